// The search page: a loading state while a search runs (the first one after a start loads CLIP,
// which takes seconds), and dropping an image anywhere on the zone to search with it.
(function () {
  const status = document.getElementById("search-status");

  function busy(form) {
    const button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.textContent = "Searching…"; }
    form.setAttribute("aria-busy", "true");
    if (status) status.textContent = "Searching…";
    document.querySelectorAll(".results-area").forEach(function (area) { area.classList.add("stale"); });
  }
  document.querySelectorAll("form.search-form").forEach(function (form) {
    form.addEventListener("submit", function () { busy(form); });
  });
  // Back/forward restores the page from cache with the button still saying "Searching…".
  window.addEventListener("pageshow", function (event) { if (event.persisted) window.location.reload(); });

  const zone = document.querySelector("[data-dropzone]");
  if (!zone) return;
  const input = zone.querySelector("input[type=file]");
  const form = zone.closest("form");
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  function submit() { busy(form); form.submit(); }
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (!event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    submit();
  });
  input.addEventListener("change", function () { if (input.files.length) submit(); });
})();
