// Image page: show/hide the object boxes; hovering (or focusing) a box or its row highlights both.
(function () {
  const figure = document.querySelector(".photo");
  const toggle = document.getElementById("toggle-boxes");
  if (!figure || !toggle) return;
  toggle.addEventListener("change", function () { figure.classList.toggle("boxes-on", toggle.checked); });
  function light(id, on) {
    document.querySelectorAll('[data-region="' + id + '"]').forEach(function (el) { el.classList.toggle("hot", on); });
  }
  document.querySelectorAll("[data-region]").forEach(function (el) {
    const id = el.dataset.region;
    ["mouseenter", "focusin"].forEach(function (name) { el.addEventListener(name, function () { light(id, true); }); });
    ["mouseleave", "focusout"].forEach(function (name) { el.addEventListener(name, function () { light(id, false); }); });
  });
})();
