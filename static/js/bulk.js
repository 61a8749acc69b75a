// Selecting photos in a grid: each card's checkbox (click, or Space when focused) selects it,
// Shift-click selects the range from the last one clicked, and the action bar says how many are
// selected. Cards loaded later by the timeline join in. Without JavaScript the checkboxes and the
// bar work as a plain form.
(function () {
  const bar = document.querySelector("[data-bulk]");
  if (!bar) return;
  const count = bar.querySelector("[data-bulk-count]");
  const idle = count.textContent;
  bar.classList.add("enhanced");  // from here on, actions show once something is selected
  let last = null;

  function boxes() { return Array.prototype.slice.call(document.querySelectorAll("[data-pick]")); }
  function update() {
    const chosen = boxes().filter(function (box) { return box.checked; });
    chosen.length ? bar.classList.add("active") : bar.classList.remove("active");
    count.textContent = chosen.length ? chosen.length + " selected" : idle;
    boxes().forEach(function (box) { box.closest(".card").classList.toggle("picked", box.checked); });
  }

  document.addEventListener("click", function (event) {
    const box = event.target.closest("[data-pick]");
    if (!box) return;
    if (event.shiftKey && last && last !== box) {
      const all = boxes(), from = all.indexOf(last), to = all.indexOf(box);
      all.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (other) { other.checked = box.checked; });
    }
    last = box;
    update();
  });
  document.addEventListener("change", function (event) { if (event.target.closest("[data-pick]")) update(); });
  bar.querySelector("[data-bulk-all]").addEventListener("click", function () { boxes().forEach(function (b) { b.checked = true; }); update(); });
  bar.querySelector("[data-bulk-clear]").addEventListener("click", function () { boxes().forEach(function (b) { b.checked = false; }); last = null; update(); });
  // Escape clears the selection (when focus is not in a field).
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.target.closest("input[type=text], select")) {
      boxes().forEach(function (b) { b.checked = false; }); update();
    }
  });
  update();
})();
