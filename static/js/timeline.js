// The timeline loads older photos in place: the "Older photos" link fetches the next page's groups
// (?partial=1) and appends them, when clicked or when it scrolls into view. A day split across two
// pages becomes one group again. Without JavaScript the link simply opens the next page.
(function () {
  const timeline = document.querySelector("[data-timeline]");
  if (!timeline) return;
  let loading = false;

  function load(link) {
    if (loading) return;
    loading = true;
    link.setAttribute("aria-busy", "true");
    link.textContent = "Loading…";
    const url = new URL(link.href, window.location.href);
    url.searchParams.set("partial", "1");
    fetch(url, { credentials: "same-origin" })
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
        loading = false;
        watch();
      })
      .catch(function () {
        loading = false;
        link.removeAttribute("aria-busy");
        link.textContent = "Could not load more photos: try again";
      });
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
})();
