// Upload many files with a progress bar each, then follow each image's processing until it is
// ready or failed. Each file is its own POST to /api/images/, so one bad file never blocks the rest.
// A row's bar measures one thing at a time: bytes sent while uploading, then (after an indeterminate
// wait in the queue) the worker's progress. A rejected file or a duplicate loses its bar: there is
// nothing more to wait for.
(function () {
  const zone = document.querySelector("[data-upload-zone]");
  if (!zone) return;
  const input = zone.querySelector("input[type=file]");
  const list = document.getElementById("upload-list");
  const csrf = zone.closest("form").querySelector("[name=csrfmiddlewaretoken]").value;
  const apiUrl = zone.dataset.apiUrl;
  const POLL_MS = 1000;

  function row(file) {
    const item = document.createElement("li");
    item.className = "upload";
    item.innerHTML = '<span class="name"></span> <progress max="100" value="0"></progress> <span class="state" role="status">uploading…</span>';
    item.querySelector(".name").textContent = file.name;
    list.appendChild(item);
    return item;
  }

  function show(item, state, text, link) {
    item.dataset.state = state;
    const label = item.querySelector(".state");
    label.textContent = text;
    const bar = item.querySelector("progress");
    if (state === "rejected" || state === "duplicate") bar.remove();
    if (state === "queued") bar.removeAttribute("value");  // indeterminate until the worker starts
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.textContent = "view";
      item.appendChild(document.createTextNode(" "));
      item.appendChild(a);
    }
  }

  function follow(item, image) {
    fetch(apiUrl + image.id + "/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (current) {
        const progress = item.querySelector("progress");
        if (current.status === "ready") {  // searchable; its objects are found later, on the photo's page
          progress.value = 100;
          show(item, "ready", current.objects_status === "found" ? "ready" : "searchable");
        } else if (current.status === "failed") {
          show(item, "failed", "failed: " + current.error);
        } else {
          if (current.status === "processing") {
            progress.value = current.progress;
            item.querySelector(".state").textContent = "processing " + current.progress + "%";
          } else {
            item.querySelector(".state").textContent = "waiting for the worker…";
          }
          setTimeout(function () { follow(item, image); }, POLL_MS);
        }
      })
      .catch(function () { setTimeout(function () { follow(item, image); }, POLL_MS * 3); });
  }

  function send(file) {
    const item = row(file);
    const body = new FormData();
    body.append("files", file);
    const request = new XMLHttpRequest();
    request.open("POST", apiUrl);
    request.setRequestHeader("X-CSRFToken", csrf);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) item.querySelector("progress").value = Math.round((100 * event.loaded) / event.total);
    });
    request.addEventListener("load", function () {
      let outcome;
      try { outcome = JSON.parse(request.responseText)[0]; } catch (error) { outcome = null; }
      if (!outcome) {
        let detail = "the server refused the upload";
        try { detail = JSON.parse(request.responseText).detail || detail; } catch (error) { /* keep the default */ }
        show(item, "rejected", "rejected: " + detail);
        return;
      }
      if (outcome.outcome === "rejected") {
        show(item, "rejected", "rejected: " + outcome.message);
      } else {
        const link = zone.dataset.detailUrl.replace("/0/", "/" + outcome.image.id + "/");
        if (outcome.outcome === "duplicate") {
          show(item, "duplicate", outcome.message, link);  // already stored: nothing to follow
        } else {
          show(item, "queued", "uploaded, waiting for the worker…", link);
          follow(item, outcome.image);
        }
      }
    });
    request.addEventListener("error", function () { show(item, "rejected", "upload failed: check your connection and try again"); });
    request.send(body);
  }

  function sendAll(files) { Array.prototype.forEach.call(files, send); input.value = ""; }

  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) { event.preventDefault(); sendAll(event.dataTransfer.files); });
  input.addEventListener("change", function () { sendAll(input.files); });
  zone.closest("form").addEventListener("submit", function (event) { event.preventDefault(); sendAll(input.files); });
})();
