// Tanda's pages: live countdowns for elements the server marks. [data-countdown="…"] counts
// down to that instant, second by second. (Times are written by the server, in Seoul time and
// the page's language.)
(function () {
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Math.max(0, Math.ceil((Date.parse(el.dataset.countdown) - now) / 1000));
      el.textContent = left + " s";
      el.classList.toggle("urgent", left <= 5);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);
  setInterval(tick, 250);
})();
