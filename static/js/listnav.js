// Next and previous within the list a photo was opened from (a timeline, search results, an
// album): grids marked data-photo-list remember their order when a photo is opened; the photo's page
// then offers newer/older links, the arrow keys, swipes on the photo, and Esc back to the list.
// The list lives in sessionStorage, so each tab keeps its own and nothing leaves the browser.
(function () {
  const KEY = "imgsearch:photo-list";
  const SWIPE_PX = 50;

  document.addEventListener("click", function (event) {
    const link = event.target.closest("[data-photo-list] a[data-photo-link]");
    if (!link) return;
    const list = link.closest("[data-photo-list]");
    const urls = Array.prototype.map.call(list.querySelectorAll("a[data-photo-link]"), function (a) { return a.pathname; });
    try {
      sessionStorage.setItem(KEY, JSON.stringify({ urls: urls, back: window.location.pathname + window.location.search, title: document.title }));
    } catch (error) { /* storage off: the page works without list navigation */ }
  });

  const nav = document.querySelector("[data-list-nav]");
  if (!nav) return;
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (error) { saved = null; }
  if (!saved || !Array.isArray(saved.urls)) return;
  const here = saved.urls.indexOf(window.location.pathname);
  if (here < 0) return;
  const newer = here > 0 ? saved.urls[here - 1] : null;
  const older = here < saved.urls.length - 1 ? saved.urls[here + 1] : null;

  function link(selector, url) {
    const a = nav.querySelector(selector);
    if (url) { a.href = url; a.hidden = false; }
  }
  link("[data-newer]", newer);
  link("[data-older]", older);
  const back = nav.querySelector("[data-back]");
  back.href = saved.back;
  back.hidden = false;
  nav.querySelector("[data-position]").textContent = (here + 1) + " of " + saved.urls.length;
  nav.hidden = false;

  function go(url) { if (url) window.location.assign(url); }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, select, textarea")) return;
    if (event.key === "ArrowLeft") go(newer);
    else if (event.key === "ArrowRight") go(older);
    else if (event.key === "Escape" && !document.querySelector(".frame.drawing")) go(saved.back);
  });
  const photo = document.querySelector("[data-swipe]");
  if (!photo) return;
  let start = null;
  photo.addEventListener("pointerdown", function (event) {
    start = event.pointerType === "mouse" || photo.classList.contains("drawing") ? null : { x: event.clientX, y: event.clientY };
  });
  photo.addEventListener("pointerup", function (event) {
    if (!start) return;
    const dx = event.clientX - start.x, dy = event.clientY - start.y;
    start = null;
    if (Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy)) go(dx < 0 ? older : newer);
  });
})();
