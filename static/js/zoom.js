// Zoom and pan for the photo viewer (static/js/viewer.js, wherever a photo is opened): a click or
// tap (or a double tap) on the photo zooms in at that spot (again zooms out), two fingers spread zoom in between them
// (pinched, out), the wheel turned up over it zooms in, and a mouse drag pans a zoomed photo (a
// finger scrolls it). `stage` scrolls; `content` (the frame holding the picture and its object boxes)
// grows to the photo's own size, at least twice the size it was shown at. Clicks on links inside (an
// object's box) stay links, and while a box is being drawn the photo is not zoomed.
window.imgsearchZoom = function (stage, content, options) {
  const img = content.tagName === "IMG" ? content : content.querySelector("img");
  const settings = Object.assign({ wheel: false, onChange: function () {} }, options || {});

  function clamp(value) { return Math.min(Math.max(value, 0), 1); }
  function zoomed() { return stage.classList.contains("zoomed"); }
  function busy() { return content.classList.contains("drawing"); }
  // The picture's rectangle on screen (object-fit: contain letterboxes it inside an img box).
  function picture() {
    const box = img.getBoundingClientRect();
    const scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight) || 1;
    const width = img.naturalWidth * scale, height = img.naturalHeight * scale;
    return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width: width, height: height };
  }
  function zoom(on, at) {
    const zoomIn = on === undefined ? !zoomed() : on;
    const before = picture();
    const fx = at ? clamp((at.x - before.left) / before.width) : 0.5;
    const fy = at ? clamp((at.y - before.top) / before.height) : 0.5;
    // The stage keeps the size it had: the photo grows inside it, as under a loupe.
    stage.style.width = zoomIn ? stage.clientWidth + "px" : "";
    stage.style.height = zoomIn ? stage.clientHeight + "px" : "";
    stage.classList.toggle("zoomed", zoomIn);
    content.style.width = zoomIn ? Math.round(Math.max(Number(img.getAttribute("width")) || img.naturalWidth, 2 * before.width)) + "px" : "";
    settings.onChange(zoomIn);
    if (!zoomIn) return;
    const frame = stage.getBoundingClientRect();
    stage.scrollLeft = fx * content.offsetWidth - (at ? at.x - frame.left : frame.width / 2);
    stage.scrollTop = fy * content.offsetHeight - (at ? at.y - frame.top : frame.height / 2);
  }

  // Two fingers: their spread decides, once, at PINCH_RATIO; no tap follows a pinch.
  const PINCH_RATIO = 1.25;
  const touches = new Map();
  let pinch = null;
  function spread() {
    const [a, b] = [...touches.values()];
    return { distance: Math.hypot(a.x - b.x, a.y - b.y), middle: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 } };
  }
  stage.addEventListener("pointerdown", function (event) {
    if (event.pointerType !== "touch" || busy()) return;
    touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (touches.size === 2) {
      pinch = { from: spread().distance, done: false };
      stage.dataset.pinching = "";  // swipes (viewer.js) stand aside
    }
  });
  stage.addEventListener("pointermove", function (event) {
    if (!touches.has(event.pointerId)) return;
    touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (!pinch || pinch.done || touches.size !== 2) return;
    const now = spread();
    if (!zoomed() && now.distance > pinch.from * PINCH_RATIO) { pinch.done = true; zoom(true, now.middle); }
    else if (zoomed() && now.distance < pinch.from / PINCH_RATIO) { pinch.done = true; zoom(false); }
  });
  function lift(event) {
    touches.delete(event.pointerId);
    if (!touches.size && pinch) {
      setTimeout(function () { pinch = null; delete stage.dataset.pinching; }, 0);  // after this pointerup's checks
    }
  }
  stage.addEventListener("pointerup", lift);
  stage.addEventListener("pointercancel", lift);

  let start = null;
  stage.addEventListener("pointerdown", function (event) {
    if (busy() || pinch) { start = null; return; }
    start = { x: event.clientX, y: event.clientY, type: event.pointerType, left: stage.scrollLeft, top: stage.scrollTop };
    if (event.pointerType === "mouse" && zoomed() && !event.target.closest("a")) {
      event.preventDefault();
      stage.setPointerCapture(event.pointerId);
      stage.classList.add("panning");
    }
  });
  stage.addEventListener("pointermove", function (event) {
    if (!start || start.type !== "mouse" || !zoomed() || !stage.classList.contains("panning")) return;
    stage.scrollLeft = start.left - (event.clientX - start.x);
    stage.scrollTop = start.top - (event.clientY - start.y);
  });
  // A double tap is what a phone's hand does to zoom: its first tap zooms in, its second is not a
  // second tap (which would zoom straight back out).
  const DOUBLE_TAP_MS = 350;
  let lastTap = -Infinity;
  stage.addEventListener("pointerup", function (event) {
    if (!start) return;
    const dx = event.clientX - start.x, dy = event.clientY - start.y;
    const onLink = event.target.closest("a");
    const touch = start.type === "touch";
    start = null;
    stage.classList.remove("panning");
    if (onLink || pinch || Math.abs(dx) >= 5 || Math.abs(dy) >= 5) return;
    if (touch && event.timeStamp - lastTap < DOUBLE_TAP_MS) { lastTap = -Infinity; return; }
    if (touch) lastTap = event.timeStamp;
    zoom(undefined, { x: event.clientX, y: event.clientY });
  });
  stage.addEventListener("pointercancel", function () { start = null; stage.classList.remove("panning"); });
  if (settings.wheel) {
    stage.addEventListener("wheel", function (event) {
      if (event.deltaY >= 0 || event.ctrlKey || zoomed() || busy()) return;
      event.preventDefault();
      zoom(true, { x: event.clientX, y: event.clientY });
    }, { passive: false });
  }
  return { zoom: zoom, zoomed: zoomed };
};
