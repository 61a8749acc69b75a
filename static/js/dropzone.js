// Drop an image anywhere on the zone to search with it; the plain file input still works alone.
(function () {
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
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (!event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    form.submit();
  });
  input.addEventListener("change", function () { if (input.files.length) form.submit(); });
})();
