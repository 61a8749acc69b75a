// Next and previous within the list a photo was opened from (a timeline, search results, an
// album): grids marked data-photo-list remember their order when a photo is opened; the viewer's
// newer/older/back links then lead through that list (the viewer, static/js/viewer.js, follows them
// for the arrow keys, swipes and Esc).
// The list lives in sessionStorage, so each tab keeps its own and nothing leaves the browser. A list
// that loads older photos in place (the timeline's data-load-more) goes on past what was loaded: the
// photo page fetches its next page as the timeline would. Back on the list, timeline.js scrolls to
// the photo last seen (RETURN_KEY).
(function () {
  const KEY = "imgsearch:photo-list";
  const RETURN_KEY = "imgsearch:return-to";

  function absolute(href) { return new URL(href, window.location.href); }
  function store(value) {
    try { sessionStorage.setItem(KEY, JSON.stringify(value)); } catch (error) { /* storage off: no list navigation */ }
  }

  document.addEventListener("click", function (event) {
    const link = event.target.closest("[data-photo-list] a[data-photo-link]");
    if (!link) return;
    const list = link.closest("[data-photo-list]");
    const links = list.querySelectorAll("a[data-photo-link]");
    const urls = Array.prototype.map.call(links, function (a) { return a.pathname; });
    const pictures = {};
    links.forEach(function (a) { if (a.dataset.picture) pictures[a.pathname] = a.dataset.picture; });
    const more = list.querySelector("[data-load-more]");
    store({
      urls: urls,
      pictures: pictures,
      more: more ? absolute(more.getAttribute("href")).href : null,
      back: window.location.pathname + window.location.search,
      title: document.title,
    });
  });

  const nav = document.querySelector("[data-list-nav]");
  if (!nav) return;
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (error) { saved = null; }
  if (!saved || !Array.isArray(saved.urls)) return;
  const here = saved.urls.indexOf(window.location.pathname);
  if (here < 0) return;
  const newer = here > 0 ? saved.urls[here - 1] : null;
  let older = here < saved.urls.length - 1 ? saved.urls[here + 1] : null;

  function link(selector, url) {
    const a = nav.querySelector(selector);
    if (url) { a.href = url; a.hidden = false; }
  }
  function position() {
    nav.querySelector("[data-position]").textContent =
      (here + 1) + " of " + saved.urls.length + (saved.more ? "+" : "");
  }
  link("[data-newer]", newer);
  link("[data-older]", older);
  // The neighbours' pictures are fetched ahead (cached an hour), so stepping shows them at once.
  const fetched = {};
  function prefetch(url) {
    const picture = url && saved.pictures && saved.pictures[url];
    if (!picture || fetched[picture]) return;
    fetched[picture] = true;
    const hint = document.createElement("link");
    hint.rel = "prefetch";
    hint.as = "image";
    hint.href = picture;
    document.head.append(hint);
  }
  prefetch(newer);
  prefetch(older);
  const back = nav.querySelector("[data-back]");
  back.href = saved.back;
  back.addEventListener("click", function () {  // timeline.js scrolls back to this photo
    try { sessionStorage.setItem(RETURN_KEY, window.location.pathname); } catch (error) { /* storage off */ }
  });
  position();

  // Near the end of what was loaded: the list's next page, parsed without loading its pictures.
  if (saved.more && here >= saved.urls.length - 2) {
    const url = absolute(saved.more);
    url.searchParams.set("partial", "1");
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.text(); })
      .then(function (html) {
        const page = new DOMParser().parseFromString(html, "text/html");
        page.querySelectorAll("a[data-photo-link]").forEach(function (a) {
          const path = new URL(a.getAttribute("href"), url).pathname;  // relative to the list, not here
          if (saved.urls.indexOf(path) < 0) saved.urls.push(path);
          if (a.dataset.picture) (saved.pictures = saved.pictures || {})[path] = new URL(a.dataset.picture, url).pathname;
        });
        const more = page.querySelector("[data-load-more]");
        saved.more = more ? new URL(more.getAttribute("href"), url).href : null;
        store(saved);
        older = here < saved.urls.length - 1 ? saved.urls[here + 1] : null;
        link("[data-older]", older);
        prefetch(older);
        position();
      })
      .catch(function () { /* offline or signed out: the list simply ends here */ });
  }
})();
