// Image page: show/hide the object boxes; hovering (or focusing) a box or its row highlights both;
// the photo (with its boxes) full screen, where the browser allows it (Esc leaves).
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
  function light(id, on) {
    document.querySelectorAll('[data-region="' + id + '"]').forEach(function (el) { el.classList.toggle("hot", on); });
  }
  document.querySelectorAll("[data-region]").forEach(function (el) {
    const id = el.dataset.region;
    ["mouseenter", "focusin"].forEach(function (name) { el.addEventListener(name, function () { light(id, true); }); });
    ["mouseleave", "focusout"].forEach(function (name) { el.addEventListener(name, function () { light(id, false); }); });
  });
})();
