// The photo viewer: arrow keys and swipes for newer/older within the list it was opened from,
// Esc back to that list, Z (or a click on the photo) to zoom to full size and pan, I for the info
// panel. Every action is also a link or a button, so it all works without a keyboard or touch.
(function () {
  const viewer = document.querySelector("[data-viewer]");
  if (!viewer) return;
  const stage = viewer.querySelector("[data-stage]");
  const zoomButton = viewer.querySelector("[data-zoom]");
  const infoButton = viewer.querySelector("[data-info]");
  const info = document.getElementById("viewer-info");
  const SWIPE_PX = 50;

  function go(url) { if (url) window.location.assign(url); }
  function zoom(on) {
    const zoomed = on === undefined ? !stage.classList.contains("zoomed") : on;
    stage.classList.toggle("zoomed", zoomed);
    zoomButton.setAttribute("aria-pressed", String(zoomed));
  }
  function toggleInfo() {
    info.hidden = !info.hidden;
    infoButton.setAttribute("aria-expanded", String(!info.hidden));
  }

  zoomButton.addEventListener("click", function () { zoom(); });
  infoButton.addEventListener("click", toggleInfo);
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest("input, select, textarea")) return;
    const actions = {
      ArrowLeft: function () { go(viewer.dataset.newerUrl); },
      ArrowRight: function () { go(viewer.dataset.olderUrl); },
      Escape: function () { go(viewer.dataset.backUrl); },
      z: function () { zoom(); }, Z: function () { zoom(); },
      i: toggleInfo, I: toggleInfo,
    };
    if (actions[event.key]) { event.preventDefault(); actions[event.key](); }
  });

  // Swipe (touch or pen; a mouse drag pans a zoomed photo instead) and click-to-zoom.
  let start = null;
  stage.addEventListener("pointerdown", function (event) { start = { x: event.clientX, y: event.clientY, type: event.pointerType }; });
  stage.addEventListener("pointerup", function (event) {
    if (!start) return;
    const dx = event.clientX - start.x, dy = event.clientY - start.y;
    const swiped = start.type !== "mouse" && !stage.classList.contains("zoomed") && Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy);
    start = null;
    if (swiped) go(dx < 0 ? viewer.dataset.olderUrl : viewer.dataset.newerUrl);
    else if (Math.abs(dx) < 5 && Math.abs(dy) < 5) zoom();
  });
  stage.addEventListener("pointercancel", function () { start = null; });
})();
