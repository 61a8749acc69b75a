// Draw a box on the photo to search for what is inside it: pointer events, so a mouse, a pen and a
// finger all draw (the frame sets touch-action: none while drawing, or the browser would take the
// gesture for a scroll and cancel it). Plain JS, no dependencies. The keyboard way to search by a
// region is the list of objects under the photo (and the boxes, which are links).
(function () {
  const frame = document.querySelector("[data-box-search]");
  if (!frame) return;
  const img = frame.querySelector("img");
  const width = Number(frame.dataset.width), height = Number(frame.dataset.height);
  const button = document.getElementById("draw-box");
  let drawing = false, start = null, rect = null;

  function point(event) {
    const bounds = img.getBoundingClientRect();
    const x = Math.min(Math.max(event.clientX - bounds.left, 0), bounds.width);
    const y = Math.min(Math.max(event.clientY - bounds.top, 0), bounds.height);
    return { x, y, scaleX: width / bounds.width, scaleY: height / bounds.height };
  }
  function place(a, b) {
    rect.style.left = Math.min(a.x, b.x) + "px";
    rect.style.top = Math.min(a.y, b.y) + "px";
    rect.style.width = Math.abs(b.x - a.x) + "px";
    rect.style.height = Math.abs(b.y - a.y) + "px";
  }
  function setDrawing(on) {
    drawing = on;
    frame.classList.toggle("drawing", drawing);
    button.setAttribute("aria-pressed", String(drawing));
    button.textContent = drawing ? "Drag over the photo… (Esc or click to cancel)" : "Draw a box to search";
  }
  button.addEventListener("click", function () { setDrawing(!drawing); });
  // Esc leaves drawing, and only that: caught before the page's own Esc (back to the list) sees it.
  window.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !drawing) return;
    event.stopPropagation();
    forget();
    setDrawing(false);
  }, true);
  frame.addEventListener("pointerdown", function (event) {
    if (!drawing) return;
    event.preventDefault();
    start = point(event);
    rect = rect || Object.assign(document.createElement("span"), { className: "drawn" });
    frame.appendChild(rect);
    place(start, start);
    frame.setPointerCapture(event.pointerId);
  });
  frame.addEventListener("pointermove", function (event) {
    if (drawing && start) place(start, point(event));
  });
  function forget() {
    start = null;
    if (rect) rect.remove();  // a tap or a cancelled gesture leaves no stray box behind
  }
  frame.addEventListener("pointercancel", forget);
  frame.addEventListener("pointerup", function (event) {
    if (!drawing || !start) return;
    const end = point(event);
    const x1 = Math.round(Math.min(start.x, end.x) * end.scaleX), x2 = Math.round(Math.max(start.x, end.x) * end.scaleX);
    const y1 = Math.round(Math.min(start.y, end.y) * end.scaleY), y2 = Math.round(Math.max(start.y, end.y) * end.scaleY);
    if (x2 - x1 < 4 || y2 - y1 < 4) { forget(); return; }  // a click, not a box
    start = null;
    window.location = frame.dataset.searchUrl + "?box_image=" + frame.dataset.imageId + "&box=" + [x1, y1, x2, y2].join(",");
  });
})();
