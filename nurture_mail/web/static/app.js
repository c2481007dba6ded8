// nurture_mail web UI: small enhancements only; every page works without this file.
(function () {
  "use strict";

  // A form with data-confirm asks before it submits (destructive one-click actions).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // "Select all" checkbox of a table: <input type="checkbox" data-select-all="name">.
  document.addEventListener("change", function (event) {
    var box = event.target;
    var name = box.getAttribute && box.getAttribute("data-select-all");
    if (!name) return;
    document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (other) {
      other.checked = box.checked;
    });
  });

  // Keyboard shortcuts: "/" focuses the page's search box; "g" then a letter goes to an area.
  var pending = null;
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    if (event.key === "/") {
      var search = document.querySelector("[data-search]");
      if (search) { event.preventDefault(); search.focus(); }
      return;
    }
    if (pending === "g") {
      pending = null;
      var links = { d: "dashboard", l: "leads", c: "campaigns", i: "imports", h: "handoffs", r: "reports", s: "suppressions", u: "users" };
      var link = links[event.key] && document.querySelector('a[data-nav="' + links[event.key] + '"]');
      if (link) { window.location.href = link.href; }
      return;
    }
    if (event.key === "g") pending = "g";
  });
})();
