/* Enhancements for the campaign, template editor and import pages; every page works without it. */
(function () {
  "use strict";

  function livePreview(form) {
    var frame = document.getElementById("preview-frame");
    var subject = document.getElementById("preview-subject");
    var text = document.getElementById("preview-text");
    var source = document.getElementById("preview-source");
    var problems = document.getElementById("problems");
    var list = document.getElementById("problem-list");
    var status = document.getElementById("preview-status");
    var timer = null;
    var sequence = 0;

    function update() {
      var data = new FormData(form);
      data.set("action", "preview");
      var mine = ++sequence;
      status.textContent = "updating…";
      fetch(form.dataset.previewUrl, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-Preview": "1" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      }).then(function (result) {
        if (mine !== sequence) { return; }
        list.textContent = "";
        result.problems.forEach(function (p) {
          var li = document.createElement("li");
          li.textContent = p.text;
          list.appendChild(li);
        });
        problems.classList.toggle("hidden", result.ok);
        if (result.ok) {
          frame.srcdoc = result.html;
          subject.textContent = result.subject;
          text.textContent = result.text;
          source.textContent = result.html;
          status.textContent = "up to date";
        } else {
          status.textContent = "showing the last version without errors";
        }
      }).catch(function (error) {
        status.textContent = "preview failed (" + error.message + ")";
      });
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(update, 400);
    }

    form.querySelectorAll("textarea").forEach(function (area) { area.addEventListener("input", schedule); });
    var lead = form.querySelector("select[name=lead]");
    if (lead) { lead.addEventListener("change", update); }
    var button = document.getElementById("preview-button");
    if (button) {
      button.addEventListener("click", function (event) { event.preventDefault(); update(); });
    }
  }

  function importProgress(box) {
    var url = box.dataset.progressUrl;
    var bar = box.querySelector("progress");
    var label = box.querySelector("[data-progress-label]");
    var counts = box.querySelector("[data-progress-counts]");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (job) {
          bar.value = job.percent;
          label.textContent = job.status_label;
          counts.textContent = job.summary;
          if (job.status === "done" || job.status === "failed") {
            window.location.reload();
          } else {
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    window.setTimeout(poll, 800);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var editor = document.getElementById("template-editor");
    if (editor) { livePreview(editor); }
    document.querySelectorAll("[data-progress-url]").forEach(importProgress);
  });
})();
