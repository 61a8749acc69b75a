// Maps (Leaflet, vendored in static/vendor/leaflet): each [data-map] element shows the markers in the
// JSON script its value names ({lat, lon, name, count, url}), on tiles from data-tiles (MAP_TILE_URL).
// A marker is an SVG circle, bigger for more photos; its popup links to those photos.
(() => {
  if (typeof L === "undefined") return;
  for (const box of document.querySelectorAll("[data-map]")) {
    const source = document.getElementById(box.dataset.map);
    const points = source ? JSON.parse(source.textContent) : [];
    if (!points.length) continue;
    const map = L.map(box, { scrollWheelZoom: false });
    L.tileLayer(box.dataset.tiles, { attribution: box.dataset.attribution || "", maxZoom: 18 }).addTo(map);
    const markers = points.map((point) => {
      const marker = L.circleMarker([point.lat, point.lon], {
        radius: 6 + Math.min(10, Math.sqrt(point.count || 1)),
        weight: 2,
        fillOpacity: 0.6,
      });
      marker.options.title = point.name;
      if (point.url) {
        const link = document.createElement("a");
        link.href = point.url;
        link.textContent = point.count ? `${point.name} · ${point.count} photo${point.count === 1 ? "" : "s"}` : point.name;
        marker.bindPopup(link);
      }
      return marker;
    });
    const group = L.featureGroup(markers).addTo(map);
    if (points.length === 1) {
      map.setView([points[0].lat, points[0].lon], 12);
    } else {
      map.fitBounds(group.getBounds(), { padding: [24, 24], maxZoom: 12 });
    }
  }
})();
