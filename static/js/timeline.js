// The timeline loads older photos in place: the "Older photos" link fetches the next page's groups
// (?partial=1) and appends them, when clicked or when it scrolls into view. A day split across two
// pages becomes one group again. Without JavaScript the link simply opens the next page.
(function () {
  const timeline = document.querySelector("[data-timeline]");
  if (!timeline) return;
  let pending = null;  // the page being fetched: a promise of whether it came

  function load(link) {
    if (pending) return pending;
    link.setAttribute("aria-busy", "true");
    link.textContent = "Loading…";
    const url = new URL(link.href, window.location.href);
    url.searchParams.set("partial", "1");
    pending = fetch(url, { credentials: "same-origin" })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.text(); })
      .then(function (html) {
        const more = link.closest(".more");
        const incoming = document.createElement("div");
        incoming.innerHTML = html;
        const first = incoming.querySelector(".day");
        const sections = timeline.querySelectorAll(".day");
        const last = sections[sections.length - 1];
        if (first && last && first.dataset.day === last.dataset.day) {  // the same day continues
          last.querySelector(".grid").append(...first.querySelector(".grid").children);
          first.remove();
        }
        more.replaceWith(...incoming.childNodes);
        pending = null;
        watch();
        followDays();
        return true;
      })
      .catch(function () {
        pending = null;
        link.removeAttribute("aria-busy");
        link.textContent = "Could not load more photos: try again";
        return false;
      });
    return pending;
  }

  let observer = null;
  function watch() {
    const link = timeline.querySelector("[data-load-more]");
    if (!link) return;
    link.addEventListener("click", function (event) { event.preventDefault(); load(link); });
    if ("IntersectionObserver" in window) {
      observer && observer.disconnect();
      observer = new IntersectionObserver(function (entries) {
        if (entries.some(function (entry) { return entry.isIntersecting; })) load(link);
      }, { rootMargin: "600px" });
      observer.observe(link);
    }
  }
  watch();

  // The date scrubber: the month being read is marked (that of the last day to start above a line
  // just under the header: days share rows, and the one that starts a row's month is what a jump
  // shows), and a month already on the page is scrolled to instead of loaded again (its link opens
  // the timeline at that month otherwise).
  const scrubber = document.querySelector("[data-scrubber]");
  const READING_LINE = 120;  // px from the top of the window
  function mark() {
    let month = null;
    for (const day of timeline.querySelectorAll(".day")) {
      if (day.getBoundingClientRect().top > READING_LINE) break;
      month = day.dataset.day.slice(0, 7);
    }
    month = month || (timeline.querySelector(".day") || { dataset: { day: "" } }).dataset.day.slice(0, 7);
    scrubber.querySelectorAll("a[data-month]").forEach(function (link) {
      if (link.dataset.month === month) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  }
  let marking = false;
  function followDays() {
    if (!scrubber || marking) return;
    marking = true;
    requestAnimationFrame(function () { marking = false; mark(); });
  }
  if (scrubber) {
    window.addEventListener("scroll", followDays, { passive: true });
    followDays();
  }
  if (scrubber) {
    scrubber.addEventListener("click", function (event) {
      const link = event.target.closest("a[data-month]");
      if (!link) return;
      const day = timeline.querySelector('.day[data-day^="' + link.dataset.month + '-"]');
      if (!day) return;  // not loaded: the link opens the timeline at that month
      event.preventDefault();
      day.scrollIntoView({ block: "start" });
    });
  }

  // Back from a photo (Esc or "Back to the list"): load as many pages as it takes to show that photo
  // again, and scroll to it, instead of landing at the top with the first page.
  let returnTo = null;
  try {
    returnTo = sessionStorage.getItem("imgsearch:return-to");
    sessionStorage.removeItem("imgsearch:return-to");
  } catch (error) { returnTo = null; }
  if (!returnTo) return;
  (function show() {
    const card = timeline.querySelector('a[data-photo-link][href="' + CSS.escape(returnTo) + '"]');
    const more = timeline.querySelector("[data-load-more]");
    if (card) {
      card.scrollIntoView({ block: "center" });
      card.focus({ preventScroll: true });
    } else if (more) {
      load(more).then(function (came) { if (came) show(); });
    }
  })();
})();
