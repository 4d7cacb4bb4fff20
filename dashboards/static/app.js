// Light progressive enhancement: live regions refresh themselves, SLA clocks tick in words, the
// reply box counts characters against its channel's limit, and the console has keyboard keys.
(function () {
  var words = document.body.dataset;
  function refresh(el) {
    fetch(el.dataset.refresh, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) { if (r.status === 401 || r.redirected) { location.reload(); return null; } return r.text(); })
      .then(function (html) { if (html !== null && html !== el.innerHTML) { el.innerHTML = html; tick(); mark(); } })
      .catch(function () {});
  }
  function span(seconds) {
    var m = Math.floor(Math.abs(seconds) / 60);
    if (m < 60) return m + " " + words.min;
    if (m < 1440) return Math.floor(m / 60) + " " + words.h + " " + String(m % 60).padStart(2, "0") + " " + words.min;
    return Math.floor(m / 1440) + " " + words.d + " " + Math.floor(m % 1440 / 60) + " " + words.h;
  }
  // "overdue 12 min" / "due in 4 min": resolved items carry no data-due, so they never count.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = (Date.parse(el.dataset.due) - now) / 1000;
      el.textContent = (left < 0 ? words.overdue : words.dueIn).replace("{}", span(left));
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
      reply.dispatchEvent(new Event("input"));
      reply.focus();
    });
  });
  // The per-channel length counter; sending is blocked while the reply is too long.
  var reply = document.getElementById("reply"), counter = document.getElementById("reply-counter");
  function count() {
    var limit = parseInt(reply.dataset.limit || "0", 10), n = Array.from(reply.value).length;
    var over = limit > 0 && n > limit;
    counter.textContent = n + (limit ? " / " + limit : "") + " " + counter.dataset.unit;
    if (over) counter.textContent += " · " + counter.dataset.tooLong;
    counter.classList.toggle("overdue", over);
    counter.dataset.over = over ? "true" : "false";
    document.querySelectorAll("#resolve, #send-next").forEach(function (b) { b.disabled = over; });
  }
  if (reply && counter) {
    reply.addEventListener("input", count);
    count();
  }
  // The escalation form is a dialog.
  var dialog = document.getElementById("escalate-dialog");
  function escalate() { if (dialog && !dialog.open) dialog.showModal(); }
  var opener = document.getElementById("open-escalate");
  if (opener) opener.addEventListener("click", escalate);
  var closer = document.getElementById("close-escalate");
  if (closer) closer.addEventListener("click", function () { dialog.close(); });
  // Keys: j/k move through the queue, Enter opens, c claims, r replies, e escalates.
  var cursor = -1;
  function rows() { return Array.from(document.querySelectorAll("#queue-table tbody tr[data-item]")); }
  function mark() {
    rows().forEach(function (r, i) { r.classList.toggle("cursor", i === cursor); });
  }
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target.tagName || "").toLowerCase();
    if (ev.ctrlKey || ev.metaKey || ev.altKey || tag === "input" || tag === "textarea" || tag === "select") return;
    var all = rows();
    if (ev.key === "j" || ev.key === "k") {
      if (!all.length) return;
      cursor = Math.max(0, Math.min(all.length - 1, cursor + (ev.key === "j" ? 1 : -1)));
      mark();
      all[cursor].scrollIntoView({ block: "nearest" });
    } else if (ev.key === "Enter" && cursor >= 0 && all[cursor]) {
      location.href = all[cursor].dataset.href;
    } else if (ev.key === "c") {
      var claim = document.getElementById("claim-next");
      if (claim) claim.click();
    } else if (ev.key === "r" && reply) {
      ev.preventDefault();
      reply.focus();
    } else if (ev.key === "e" && dialog) {
      ev.preventDefault();
      escalate();
    } else {
      return;
    }
  });
  tick();
  setInterval(tick, 1000);
})();
