/* A running reconciliation's page: the progress bar follows the job without reloading the page,
   which reloads once when the job has finished (to show the findings). Without this script the page
   reloads itself every few seconds instead (a <noscript> refresh). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.querySelector("[data-poll]");
    if (!box || !window.fetch) { return; }
    var url = box.getAttribute("data-poll");
    var every = (parseInt(box.getAttribute("data-every"), 10) || 3) * 1000;
    var bar = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    var state = document.getElementById("state");

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      }).then(function (answer) {
        if (answer.status !== "running") { location.replace(location.href.split("#")[0]); return; }
        bar.value = answer.percent;
        bar.textContent = answer.percent + "%";
        text.textContent = answer.percent + "%";
        state.textContent = answer.label + (answer.step ? "：" + answer.step : "");
        setTimeout(poll, every);
      }).catch(function () {
        // Signed out, or a service not answering: the page itself says what happened.
        setTimeout(function () { location.reload(); }, every * 3);
      });
    }
    setTimeout(poll, every);
  });
})();
