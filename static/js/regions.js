// Image page: show/hide the object boxes; hovering (or focusing) a box or its row highlights both;
// zoom and pan; the photo (with its boxes) full screen, where the browser allows it (Esc leaves).
(function () {
  const figure = document.querySelector(".photo");
  const toggle = document.getElementById("toggle-boxes");
  if (!figure || !toggle) return;
  toggle.addEventListener("change", function () { figure.classList.toggle("boxes-on", toggle.checked); });
  const full = document.getElementById("full-screen");
  if (full && figure.requestFullscreen) {
    full.hidden = false;
    full.addEventListener("click", function () { figure.requestFullscreen().catch(function () { full.hidden = true; }); });
  }
  // Zoom (static/js/zoom.js, as in the album viewer): a click or tap on the photo, Z or the button;
  // drag to pan. The boxes grow with the photo.
  const stage = figure.querySelector("[data-stage]");
  const zoomButton = document.getElementById("zoom");
  if (stage && zoomButton && window.imgsearchZoom) {
    const zoomer = window.imgsearchZoom(stage, stage.querySelector(".frame"), {
      onChange: function (on) { zoomButton.setAttribute("aria-pressed", String(on)); },
    });
    zoomButton.hidden = false;
    zoomButton.addEventListener("click", function () { zoomer.zoom(); });
    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, select, textarea")) return;
      if ((event.key === "z" || event.key === "Z") && !stage.querySelector(".drawing")) zoomer.zoom();
    });
    // Esc zooms out first (caught before the list's Esc, which leaves the photo).
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || !zoomer.zoomed()) return;
      event.stopPropagation();
      event.preventDefault();
      zoomer.zoom(false);
    }, true);
  }
  function light(id, on) {
    document.querySelectorAll('[data-region="' + id + '"]').forEach(function (el) { el.classList.toggle("hot", on); });
  }
  document.querySelectorAll("[data-region]").forEach(function (el) {
    const id = el.dataset.region;
    ["mouseenter", "focusin"].forEach(function (name) { el.addEventListener(name, function () { light(id, true); }); });
    ["mouseleave", "focusout"].forEach(function (name) { el.addEventListener(name, function () { light(id, false); }); });
  });
})();
