// Light progressive enhancement: live regions refresh themselves; SLA clocks tick.
(function () {
  function refresh(el) {
    fetch(el.dataset.refresh, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) { if (r.status === 401 || r.redirected) { location.reload(); return null; } return r.text(); })
      .then(function (html) { if (html !== null && html !== el.innerHTML) { el.innerHTML = html; tick(); } })
      .catch(function () {});
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.due) - now) / 1000);
      var abs = Math.abs(left), m = Math.floor(abs / 60), s = abs % 60;
      var text = (left < 0 ? "-" : "") + m + ":" + String(s).padStart(2, "0");
      el.textContent = text;
      el.classList.toggle("overdue", left < 0);
    });
  }
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    var every = parseInt(el.dataset.every || "2000", 10);
    setInterval(function () { refresh(el); }, every);
  });
  tick();
  setInterval(tick, 1000);
})();
