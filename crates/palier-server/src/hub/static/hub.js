// The Loyalty Hub's only script: progressive enhancement, every page works without it.
(function () {
  "use strict";
  // The member token came in the link once; the cookie carries it from now on, so
  // the address bar, the history and bookmarks need not keep it.
  var url = new URL(window.location.href);
  if (url.searchParams.has("token")) {
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  // After a what-if, take keyboard and screen-reader users to its result.
  var result = document.getElementById("simulation");
  if (result) {
    result.focus();
  }
})();
