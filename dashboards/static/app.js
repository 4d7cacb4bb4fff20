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
      var abs = Math.abs(left), h = Math.floor(abs / 3600), m = Math.floor(abs % 3600 / 60);
      var s = abs % 60, pad = function (n) { return String(n).padStart(2, "0"); };
      var text = (left < 0 ? "-" : "") + (h ? h + "h" + pad(m) + "m" : m + ":" + pad(s));
      el.textContent = text;
      el.classList.toggle("overdue", left < 0);
    });
  }
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    var every = parseInt(el.dataset.every || "2000", 10);
    setInterval(function () { refresh(el); }, every);
  });
  // A suggested reply, as the agent edited it, becomes the reply they send.
  document.querySelectorAll(".use-suggestion").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.parentElement.querySelector(".suggestion-text").value;
      var reply = document.getElementById(button.dataset.target);
      reply.value = text;
      reply.focus();
    });
  });
  tick();
  setInterval(tick, 1000);
})();
