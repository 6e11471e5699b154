// Keyboard shortcuts for the console: "/" focuses the search field; "g" then a letter goes to a
// page (d dashboard, l deliveries, r rejected, q dead letters, s suppressions, t templates,
// n tenants, a audit);
// "?" shows the list.
(function () {
  var pages = { d: "/console", l: "/console/deliveries", r: "/console/rejected",
    q: "/console/dead-letters", s: "/console/suppressions", t: "/console/templates", n: "/console/tenants",
    a: "/console/audit" };
  var pending = false;
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
      if (e.key === "Escape") { t.blur(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (e.key === "/") {
      var search = document.querySelector("[data-search]");
      if (search) { e.preventDefault(); search.focus(); search.select(); }
    } else if (e.key === "g") {
      pending = true;
      setTimeout(function () { pending = false; }, 1500);
    } else if (pending && pages[e.key]) {
      pending = false;
      window.location.href = pages[e.key];
    } else if (e.key === "?") {
      var help = document.getElementById("shortcuts");
      if (help) { help.hidden = !help.hidden; }
    }
  });
  // A form that acts is sent once: a double click must not resend twice.
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    });
  });
})();
