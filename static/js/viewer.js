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

  const img = stage.querySelector("img");

  function go(url) { if (url) window.location.assign(url); }
  function clamp(value) { return Math.min(Math.max(value, 0), 1); }
  // The picture's rectangle on screen: object-fit: contain letterboxes it inside the img box.
  function picture() {
    const box = img.getBoundingClientRect();
    const scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight) || 1;
    const width = img.naturalWidth * scale, height = img.naturalHeight * scale;
    return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width: width, height: height };
  }
  // Zoom in or out; zooming in at a pointer keeps the spot under it where it was (else the centre).
  function zoom(on, at) {
    const zoomed = on === undefined ? !stage.classList.contains("zoomed") : on;
    const before = picture();
    const fx = at ? clamp((at.x - before.left) / before.width) : 0.5;
    const fy = at ? clamp((at.y - before.top) / before.height) : 0.5;
    stage.classList.toggle("zoomed", zoomed);
    zoomButton.setAttribute("aria-pressed", String(zoomed));
    if (!zoomed) return;
    const frame = stage.getBoundingClientRect();
    stage.scrollLeft = fx * img.offsetWidth - (at ? at.x - frame.left : frame.width / 2);
    stage.scrollTop = fy * img.offsetHeight - (at ? at.y - frame.top : frame.height / 2);
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

  // Swipe (touch or pen), a mouse drag that pans a zoomed photo, click or tap to zoom at that spot,
  // and the wheel turned up over the photo zooms in there (zoomed, the wheel scrolls as usual).
  let start = null;
  stage.addEventListener("pointerdown", function (event) {
    start = { x: event.clientX, y: event.clientY, type: event.pointerType, left: stage.scrollLeft, top: stage.scrollTop };
    if (event.pointerType === "mouse" && stage.classList.contains("zoomed")) {
      event.preventDefault();
      stage.setPointerCapture(event.pointerId);
      stage.classList.add("panning");
    }
  });
  stage.addEventListener("pointermove", function (event) {
    if (!start || start.type !== "mouse" || !stage.classList.contains("zoomed")) return;
    stage.scrollLeft = start.left - (event.clientX - start.x);
    stage.scrollTop = start.top - (event.clientY - start.y);
  });
  stage.addEventListener("pointerup", function (event) {
    if (!start) return;
    const dx = event.clientX - start.x, dy = event.clientY - start.y;
    const swiped = start.type !== "mouse" && !stage.classList.contains("zoomed") && Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy);
    start = null;
    stage.classList.remove("panning");
    if (swiped) go(dx < 0 ? viewer.dataset.olderUrl : viewer.dataset.newerUrl);
    else if (Math.abs(dx) < 5 && Math.abs(dy) < 5) zoom(undefined, { x: event.clientX, y: event.clientY });
  });
  stage.addEventListener("pointercancel", function () { start = null; stage.classList.remove("panning"); });
  stage.addEventListener("wheel", function (event) {
    if (event.deltaY >= 0 || event.ctrlKey || stage.classList.contains("zoomed")) return;
    event.preventDefault();
    zoom(true, { x: event.clientX, y: event.clientY });
  }, { passive: false });
})();
