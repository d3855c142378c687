// Sagaflow dashboard: the little behaviour htmx attributes cannot say, as a file
// (the CSP allows no inline script and no eval).
(function () {
  "use strict";

  function isPoll(event) {
    var trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    return !trigger; // htmx's `every` polling has no triggering DOM event
  }

  // Live regions poll ([data-poll]); a poll is skipped while the tab is hidden
  // and while the user is working inside the region (rows selected, a field focused).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt.hasAttribute || !elt.hasAttribute("data-poll") || !isPoll(event)) {
      return;
    }
    var active = document.activeElement;
    var busy = elt.querySelector("input[type=checkbox]:checked") ||
      (active && elt.contains(active) && active.matches("input, select, textarea"));
    if (document.visibilityState !== "visible" || busy) {
      event.preventDefault();
    }
  });

  // A poll that answers after its region was replaced (a filter changed meanwhile)
  // has nowhere to go: drop it instead of swapping into a detached element.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && !document.body.contains(target)) {
      event.detail.shouldSwap = false;
    }
  });

  // Coming back to the tab refreshes the live regions at once.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && window.htmx) {
      document.querySelectorAll("[data-poll]").forEach(function (elt) {
        window.htmx.trigger(elt, "refresh");
      });
    }
  });

  // A new request clears the last refusal shown.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (!event.defaultPrevented && !isPoll(event)) {
      var problems = document.getElementById("problems");
      if (problems) { problems.innerHTML = ""; }
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var dismiss = target.closest("[data-dismiss]");
    if (dismiss) {
      var box = dismiss.closest(".problem, .notice");
      if (box) { box.remove(); }
    }
    var clear = target.closest("[data-clear]");
    if (clear) {
      var region = document.querySelector(clear.getAttribute("data-clear"));
      if (region) {
        event.preventDefault();
        region.innerHTML = "";
      }
    }
  });

  // "Select all" for bulk actions.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box instanceof HTMLInputElement && box.hasAttribute("data-select-all")) {
      document.querySelectorAll("input[name=saga]").forEach(function (row) {
        row.checked = box.checked;
      });
    }
  });

  // A panel that opens, or the outcome that replaces it, takes the focus, so
  // keyboard and screen-reader users land in it.
  function focusPanel(target) {
    if (target && target.hasAttribute && target.hasAttribute("data-focus-on-swap")) {
      var first = target.querySelector("textarea, input:not([type=hidden]), select, button");
      if (first) { first.focus(); }
    }
  }
  document.addEventListener("htmx:afterSwap", function (event) { focusPanel(event.detail.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    focusPanel(document.getElementById(event.detail.target.id) || event.detail.target);
  });
})();
