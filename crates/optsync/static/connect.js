// The page after connecting a Keap app: the Post URL's copy button, and the wait for Keap's
// first post, asked of the console every few seconds until it comes.
"use strict";
(function () {
  var url = document.getElementById("post-url");
  var copy = document.getElementById("copy");
  if (url && copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(url.textContent).then(function () {
        copy.textContent = "Copied";
      });
    });
  }
  var wait = document.getElementById("first-post");
  if (!wait) {
    return;
  }
  var ask = "/tenants/" + encodeURIComponent(wait.dataset.app) +
    "/keap-post.json?since=" + encodeURIComponent(wait.dataset.since);
  function posted(ms) {
    var at = new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    wait.textContent = "Keap posted at " + at + " — the action set is wired";
    wait.className = "ok";
  }
  function poll() {
    fetch(ask, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (j) {
        if (j.posted_at) {
          posted(j.posted_at);
        } else {
          setTimeout(poll, 2000);
        }
      }, function () { setTimeout(poll, 5000); });
  }
  poll();
})();
