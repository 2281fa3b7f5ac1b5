/* The deputy's report page: choosing a reply template fills the answer box in place. Without this
   script the template's link opens the same page with the box filled by the server. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("content");
    if (!box) { return; }
    document.querySelectorAll("a[data-template]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        box.value = link.getAttribute("data-template");
        document.querySelectorAll("a[data-template]").forEach(function (other) { other.removeAttribute("aria-current"); });
        link.setAttribute("aria-current", "true");
        box.focus();
        // The part in brackets is what the deputy must change: select the first one.
        var start = box.value.indexOf("（");
        var end = box.value.indexOf("）", start);
        if (start >= 0 && end > start) { box.setSelectionRange(start, end + 1); }
      });
    });
  });
})();
