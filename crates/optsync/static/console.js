// The console's one script. Every time a page shows is a <time datetime="…Z"> whose text is
// the moment in UTC (what a browser without this script shows); this rewrites the text to
// the viewer's own time zone with the moment's age ("3 min ago"), keeps the UTC text as the
// tooltip, and refreshes the ages every half minute. Served as a file: the console's CSP
// allows no inline script.
(function () {
  "use strict";
  var thisYear = new Date().getFullYear();
  var formats = {};
  // The year only when it is not this one.
  function local(at) {
    var key = new Date(at).getFullYear() === thisYear ? "short" : "long";
    if (!formats[key]) {
      var o = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
      if (key === "long") o.year = "numeric";
      formats[key] = new Intl.DateTimeFormat(undefined, o);
    }
    return formats[key].format(at);
  }

  function age(ms) {
    var future = ms < 0;
    var s = Math.round(Math.abs(ms) / 1000);
    if (s < 45) return "just now";
    var m = Math.round(s / 60), h = Math.round(s / 3600), d = Math.round(s / 86400);
    var text = m < 60 ? m + " min" : h < 48 ? h + " h" : d + " days";
    return future ? "in " + text : text + " ago";
  }

  function render() {
    var now = Date.now();
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) continue;
      if (!el.title) el.title = el.textContent;
      el.textContent = local(at) + " · " + age(now - at);
      el.setAttribute("data-local", "");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
  setInterval(render, 30000);
})();
