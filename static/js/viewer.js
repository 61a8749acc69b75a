// The one photo viewer (templates/gallery/viewer.html), wherever a photo is opened: ← and → (or a
// swipe) to the newer and older photo of the list it came from, Esc back to that list, Z (or a click,
// a tap, two fingers or the wheel on the photo) to zoom at that spot and drag to pan (static/js/zoom.js),
// I for the info panel beside the photo, the object boxes shown or hidden, and full screen. The list's
// links are the page's own (an album's order, from the server) or filled in by static/js/listnav.js;
// this script follows whatever they say. Every action is also a link or a button.
(function () {
  const viewer = document.querySelector("[data-viewer]");
  if (!viewer) return;
  const figure = viewer.querySelector(".photo");
  const stage = viewer.querySelector("[data-stage]");
  const frame = stage.querySelector(".frame");
  const zoomButton = viewer.querySelector("[data-zoom]");
  const infoButton = viewer.querySelector("[data-info]");
  const info = document.getElementById("viewer-info");
  const INFO_KEY = "imgsearch:viewer-info";
  const SWIPE_PX = 50;

  // The photo and its panel fill the window below the header and the bar, however tall those are.
  const body = viewer.querySelector(".viewer-body");
  function fit() {
    const top = body.getBoundingClientRect().top + window.scrollY;
    viewer.style.setProperty("--stage-h", Math.max(window.innerHeight - top - 12, 256) + "px");
  }
  fit();
  window.addEventListener("resize", fit);

  const zoomer = window.imgsearchZoom(stage, frame, {
    wheel: true,
    onChange: function (on) {
      zoomButton.setAttribute("aria-pressed", String(on));
      // Zoomed in: the original's own pixels in place of the screen-sized preview (once).
      const picture = frame.querySelector("img");
      if (on && picture.dataset.original) { picture.src = picture.dataset.original; delete picture.dataset.original; }
    },
  });
  function drawing() { return frame.classList.contains("drawing"); }

  // A list link, followed as a click so that listnav.js remembers where to scroll back to.
  function follow(selector) {
    const link = viewer.querySelector(selector);
    if (link && !link.hidden && link.getAttribute("href")) link.click();
  }

  // The info panel stays as the person left it, from one photo to the next.
  function showInfo(shown) {
    info.hidden = !shown;
    infoButton.setAttribute("aria-expanded", String(shown));
    try { localStorage.setItem(INFO_KEY, shown ? "shown" : "hidden"); } catch (error) { /* storage off */ }
  }
  let remembered = null;
  try { remembered = localStorage.getItem(INFO_KEY); } catch (error) { remembered = null; }
  if (remembered === "hidden") showInfo(false);
  // I or Info: below the photo (a narrow screen) the panel is brought into view first; else it
  // hides or shows.
  function infoAction() {
    if (!info.hidden && info.getBoundingClientRect().top >= window.innerHeight - 40) {
      info.scrollIntoView({ block: "start" });
      return;
    }
    showInfo(info.hidden);
    if (!info.hidden) info.scrollIntoView({ block: "nearest" });
  }
  infoButton.addEventListener("click", infoAction);
  zoomButton.addEventListener("click", function () { zoomer.zoom(); });

  const toggle = document.getElementById("toggle-boxes");
  if (toggle) toggle.addEventListener("change", function () { figure.classList.toggle("boxes-on", toggle.checked); });
  const full = document.getElementById("full-screen");
  if (full && figure.requestFullscreen) {
    full.hidden = false;
    full.addEventListener("click", function () { figure.requestFullscreen().catch(function () { full.hidden = true; }); });
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, select, textarea")) return;
    if (event.key === "Escape" && document.fullscreenElement) return;  // the browser leaves full screen
    const actions = {
      ArrowLeft: function () { follow("[data-newer]"); },
      ArrowRight: function () { follow("[data-older]"); },
      // Esc zooms out first, then leaves (while a box is drawn, boxdraw.js takes Esc to stop drawing).
      Escape: function () { if (zoomer.zoomed()) zoomer.zoom(false); else if (!drawing()) follow("[data-back]"); },
      z: function () { if (!drawing()) zoomer.zoom(); },
      i: infoAction,
    };
    const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (action) { event.preventDefault(); action(); }
  });

  // A swipe (touch or pen) on a photo that is not zoomed, drawn on or pinched steps to the next one.
  let start = null;
  stage.addEventListener("pointerdown", function (event) {
    start = event.pointerType === "mouse" || zoomer.zoomed() || drawing() ? null : { x: event.clientX, y: event.clientY };
  });
  stage.addEventListener("pointerup", function (event) {
    if (!start || stage.hasAttribute("data-pinching")) { start = null; return; }
    const dx = event.clientX - start.x, dy = event.clientY - start.y;
    start = null;
    if (Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy)) follow(dx < 0 ? "[data-older]" : "[data-newer]");
  });

  // Hovering (or focusing) an object's box or its line in the panel lights up both.
  function light(id, on) {
    viewer.querySelectorAll('[data-region="' + id + '"]').forEach(function (el) { el.classList.toggle("hot", on); });
  }
  viewer.querySelectorAll("[data-region]").forEach(function (el) {
    const id = el.dataset.region;
    ["mouseenter", "focusin"].forEach(function (name) { el.addEventListener(name, function () { light(id, true); }); });
    ["mouseleave", "focusout"].forEach(function (name) { el.addEventListener(name, function () { light(id, false); }); });
  });
})();
