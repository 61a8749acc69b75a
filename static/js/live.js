// Keep status badges current without reloading the page: poll the status of the images still on
// their way, update their badges (and error text) in place, stop when all are finished. A page that
// asks for it (data-reload-when-final on <main>, the image page) reloads once, when its image is done,
// to show the regions found.
(function () {
  const POLL_MS = 3000;
  const root = document.querySelector("[data-status-url]");
  if (!root) return;
  const url = root.dataset.statusUrl;

  function pending() {
    return Array.prototype.map.call(document.querySelectorAll("[data-status-of][data-live]"), function (badge) {
      return badge.dataset.statusOf;
    });
  }

  function update(image) {
    document.querySelectorAll('[data-status-of="' + image.id + '"]').forEach(function (badge) {
      badge.textContent = image.label;
      badge.className = "badge " + image.status;
      if (image.final) badge.removeAttribute("data-live");
    });
    const card = document.querySelector('[data-image-card="' + image.id + '"]');
    if (card) {
      const regions = card.querySelector("[data-region-count]");
      if (regions) regions.textContent = image.regions + (image.regions === 1 ? " region" : " regions");
      const error = card.querySelector("[data-error]");
      if (error) { error.textContent = image.status === "failed" ? image.error : ""; error.hidden = image.status !== "failed"; }
    }
    if (image.final && root.dataset.reloadWhenFinal === String(image.id)) window.location.reload();
  }

  function poll() {
    const ids = pending();
    if (!ids.length) { setTimeout(poll, POLL_MS); return; }  // cards appended later may need it
    fetch(url + "?ids=" + ids.join(","), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { images: [] }; })
      .then(function (body) {
        body.images.forEach(update);
        const answered = body.images.map(function (image) { return String(image.id); });
        ids.forEach(function (id) {  // deleted meanwhile, or no longer visible: stop asking
          if (answered.indexOf(id) < 0) document.querySelectorAll('[data-status-of="' + id + '"]').forEach(function (b) { b.removeAttribute("data-live"); });
        });
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ })
      .finally(function () { setTimeout(poll, POLL_MS); });
  }
  setTimeout(poll, POLL_MS);
})();
