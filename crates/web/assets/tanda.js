// Tanda's pages: local times and live countdowns for elements the server marks.
// <time datetime="…"> shows in the reader's own time zone; [data-countdown="…"] counts down to
// that instant, second by second.
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      var opts = el.dataset.format === "day"
        ? { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
        : { hour: "2-digit", minute: "2-digit" };
      el.textContent = at.toLocaleString([], opts);
      el.title = at.toString();
      el.dataset.local = "1";
    });
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Math.max(0, Math.ceil((Date.parse(el.dataset.countdown) - now) / 1000));
      el.textContent = left + " s";
      el.classList.toggle("urgent", left <= 5);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localTimes(document); tick(); });
  document.addEventListener("htmx:afterSettle", function (e) { localTimes(e.target); tick(); });
  document.addEventListener("htmx:oobAfterSwap", function (e) { localTimes(e.target); });
  setInterval(tick, 250);
})();
