// The photo viewer: arrow keys and swipes for newer/older within the list it was opened from,
// Esc back to that list, Z (or a click, a tap or the wheel on the photo) to zoom to full size at that
// spot and drag to pan, I for the info panel beside the photo. Every action is also a link or a button, so it all works without a keyboard or touch.
(function () {
  const viewer = document.querySelector("[data-viewer]");
  if (!viewer) return;
  const stage = viewer.querySelector("[data-stage]");
  const zoomButton = viewer.querySelector("[data-zoom]");
  const infoButton = viewer.querySelector("[data-info]");
  const info = document.getElementById("viewer-info");
  const SWIPE_PX = 50;

  // Zoom at a click, a tap or the wheel, drag to pan: static/js/zoom.js, shared with the photo page.
  const zoomer = window.imgsearchZoom(stage, stage.querySelector("img"), {
    wheel: true,
    onChange: function (on) { zoomButton.setAttribute("aria-pressed", String(on)); },
  });
  function zoom(on, at) { zoomer.zoom(on, at); }
  function go(url) { if (url) window.location.assign(url); }
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

  // A swipe (touch or pen) on a photo that is not zoomed steps to the newer or older one.
  let start = null;
  stage.addEventListener("pointerdown", function (event) {
    start = event.pointerType === "mouse" || zoomer.zoomed() ? null : { x: event.clientX, y: event.clientY };
  });
  stage.addEventListener("pointerup", function (event) {
    if (!start || stage.hasAttribute("data-pinching")) { start = null; return; }
    const dx = event.clientX - start.x, dy = event.clientY - start.y;
    start = null;
    if (Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy)) go(dx < 0 ? viewer.dataset.olderUrl : viewer.dataset.newerUrl);
  });
})();
