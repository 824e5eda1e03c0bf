/* Lamina web UI: the little htmx does not do. Copy buttons, drag and drop, the source panel, keys. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-copy]");
    if (button) {
      var status = button.parentElement.querySelector(".copied");
      copyText(button.getAttribute("data-copy")).then(
        function () { if (status) status.textContent = "Copied."; },
        function () { if (status) status.textContent = "Could not copy: select the text instead."; }
      );
      return;
    }
    if (e.target.closest("[data-close-panel]")) {
      e.preventDefault();
      closePanel();
    }
  });

  /* the source panel: focus moves in when it opens, and back to the marker when it closes */
  var opener = null;
  function closePanel() {
    var panel = document.getElementById("side-panel");
    if (!panel) return;
    panel.innerHTML = "";
    if (opener && document.body.contains(opener)) opener.focus();
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail.elt;
    if (elt && elt.getAttribute && elt.getAttribute("hx-target") === "#side-panel") opener = elt;
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail.target;
    if (target && target.id === "side-panel") {
      var heading = document.getElementById("panel-title");
      if (heading) heading.focus();
    }
    if (target && target.id === "turns") {
      var form = document.getElementById("ask");
      var question = document.getElementById("question");
      if (form && question && e.detail.xhr && e.detail.xhr.status < 300) { question.value = ""; question.focus(); }
      document.getElementById("ask-error").textContent = "";
    }
    if (target && target.id === "sources" && e.detail.requestConfig && e.detail.requestConfig.verb === "post") {
      var refused = document.getElementById("sources-error");
      if (refused) refused.textContent = "";
    }
    if (target && target.id === "jobs") {
      var upload = document.getElementById("upload-form");
      if (upload) upload.reset();
      var err = document.getElementById("upload-error");
      if (err) err.textContent = "";
    }
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      var panel = document.getElementById("side-panel");
      if (panel && panel.innerHTML.trim()) { closePanel(); return; }
      if (document.activeElement && document.activeElement.classList.contains("cite")) document.activeElement.blur();
    }
    /* Enter sends a question; Shift+Enter is a new line */
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.target.id === "question") {
      e.preventDefault();
      var form = e.target.form;
      if (form && e.target.value.trim()) form.requestSubmit();
    }
  });

  /* keep the newest answer in view while it streams */
  document.addEventListener("htmx:sseMessage", function (e) {
    var turns = document.getElementById("turns");
    if (!turns) return;
    var box = turns.lastElementChild;
    if (box && box.getBoundingClientRect().bottom > window.innerHeight) box.scrollIntoView({ block: "end" });
  });

  /* drag and drop: the whole drop zone takes files, not just the small input */
  document.addEventListener("dragover", function (e) {
    var zone = e.target.closest && e.target.closest("[data-dropzone]");
    if (zone) { e.preventDefault(); zone.classList.add("over"); }
  });
  document.addEventListener("dragleave", function (e) {
    var zone = e.target.closest && e.target.closest("[data-dropzone]");
    if (zone) zone.classList.remove("over");
  });
  document.addEventListener("drop", function (e) {
    var zone = e.target.closest && e.target.closest("[data-dropzone]");
    if (!zone) return;
    e.preventDefault();
    zone.classList.remove("over");
    var input = zone.querySelector("input[type=file]");
    if (input && e.dataTransfer && e.dataTransfer.files.length) input.files = e.dataTransfer.files;
  });

  /* phones: the conversation list starts folded */
  document.addEventListener("DOMContentLoaded", function () {
    var menu = document.querySelector(".conv-menu");
    if (menu && window.matchMedia("(max-width: 800px)").matches) menu.open = false;
  });
})();
