// Sagaflow dashboard: the little behaviour htmx attributes cannot say, as a file
// (the CSP allows no inline script and no eval). README: Dashboard.
(function () {
  "use strict";

  function isPoll(event) {
    var trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    return !trigger; // htmx's `every` polling has no triggering DOM event
  }

  // --- what a person is doing: unsent input, focus ---------------------------

  function fieldsOf(elt) {
    if (elt.matches("input, select, textarea")) { return [elt]; }
    return Array.prototype.slice.call(elt.querySelectorAll("input, select, textarea"));
  }

  function defaultIndex(select) {
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].defaultSelected) { return i; }
    }
    return select.multiple ? -1 : 0;
  }

  // Typed text, a ticked box or a chosen option that differs from what the
  // server rendered, and was not sent yet.
  function hasUnsentInput(elt) {
    return fieldsOf(elt).some(function (field) {
      var type = (field.type || "").toLowerCase();
      if (type === "hidden" || type === "submit" || type === "button") { return false; }
      if (type === "checkbox" || type === "radio") { return field.checked !== field.defaultChecked; }
      if (field.tagName === "SELECT") { return field.selectedIndex !== defaultIndex(field); }
      return field.value !== field.defaultValue;
    });
  }

  function holdsFocus(elt) {
    var active = document.activeElement;
    return Boolean(active && active !== document.body && elt.contains(active));
  }

  // --- live regions ----------------------------------------------------------

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
    if (document.visibilityState !== "visible" || busy || refreshedJustNow(elt)) {
      event.preventDefault();
    }
  });

  // A morphed region keeps its poll timer, so a refresh (the tab came back) may
  // be followed at once by the timer's poll: that one is skipped.
  function refreshedJustNow(elt) {
    var every = /every (\d+(?:\.\d+)?)s/.exec(elt.getAttribute("hx-trigger") || "");
    var last = elt.sagaflowLastRequest || 0;
    return Boolean(every) && Date.now() - last < 500 * Number(every[1]);
  }
  document.addEventListener("htmx:beforeSend", function (event) {
    var elt = event.detail.elt;
    if (elt.hasAttribute && elt.hasAttribute("data-poll")) { elt.sagaflowLastRequest = Date.now(); }
  });

  // A refresh morphs the region (hx-swap="morph", idiomorph): only what changed
  // is touched, so focus and the scroll position stay. On top of that, while a
  // refresh is swapped in, nothing a person is using is changed or removed: a
  // form or field with unsent input, an element holding the focus, and whether
  // a <details> is open. The answer to a person's own request (a decision, an
  // action) is swapped whole: it says what became of what they sent.
  var refreshing = false;

  // When the answer to a person's own request (a decision, an action) was
  // swapped in. A refresh sent before then may have been answered before that
  // change was made: swapping it in would put back what the person just
  // changed (a decided request with its form again, "You approved" gone).
  var lastAnswerAt = 0;
  document.addEventListener("htmx:beforeSend", function (event) {
    if (event.detail.xhr) { event.detail.xhr.sagaflowSentAt = Date.now(); }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    // A poll that answers after its region was replaced (a filter changed
    // meanwhile) has nowhere to go: drop it instead of swapping into a detached element.
    if (target && !document.body.contains(target)) {
      event.detail.shouldSwap = false;
      return;
    }
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    var refresh = Boolean(elt && elt.hasAttribute && elt.hasAttribute("data-poll"));
    var sentAt = event.detail.xhr && event.detail.xhr.sagaflowSentAt;
    if (refresh && sentAt !== undefined && sentAt <= lastAnswerAt) {
      event.detail.shouldSwap = false; // older than the person's own answer: the next one is not
      return;
    }
    if (!refresh) { lastAnswerAt = Date.now(); }
    refreshing = refresh;
  });
  document.addEventListener("htmx:afterSwap", function () { refreshing = false; });
  document.addEventListener("htmx:swapError", function () { refreshing = false; });

  function configureMorph() {
    if (!window.Idiomorph) { return; }
    var callbacks = window.Idiomorph.defaults.callbacks;
    callbacks.beforeNodeMorphed = function (oldNode) {
      if (!refreshing || oldNode.nodeType !== 1) { return true; }
      if (oldNode.matches("form, input, select, textarea") && hasUnsentInput(oldNode)) {
        return false;
      }
      return true;
    };
    callbacks.beforeNodeRemoved = function (node) {
      if (!refreshing || node.nodeType !== 1) { return true; }
      return !(holdsFocus(node) || hasUnsentInput(node));
    };
    callbacks.beforeAttributeUpdated = function (name, elt) {
      return !(refreshing && name === "open" && elt.tagName === "DETAILS");
    };
  }

  // Coming back to the tab refreshes the live regions at once.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && window.htmx) {
      document.querySelectorAll("[data-poll]").forEach(function (elt) {
        window.htmx.trigger(elt, "refresh");
      });
    }
  });

  // --- refusals and failures -------------------------------------------------

  // A new request clears the last refusal shown.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (!event.defaultPrevented && !isPoll(event)) {
      var problems = document.getElementById("problems");
      if (problems) { problems.innerHTML = ""; }
    }
  });

  function sayProblem(text) {
    var problems = document.getElementById("problems");
    if (!problems) { return; }
    var box = document.createElement("div");
    box.className = "problem";
    box.setAttribute("role", "alert");
    box.textContent = text + " ";
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "link-button";
    dismiss.setAttribute("data-dismiss", "");
    dismiss.textContent = "Dismiss";
    box.appendChild(dismiss);
    problems.innerHTML = "";
    problems.appendChild(box);
  }

  // 4xx answers are swapped where they belong (htmx-config in base.html); a
  // server error or a lost connection is not, and would otherwise pass unseen.
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 500 && !isPoll(event)) {
      sayProblem("The server could not answer (" + status + "); nothing on this page changed. " +
        "Try again, or reload the page.");
    }
  });
  document.addEventListener("htmx:sendError", function (event) {
    if (!isPoll(event)) {
      sayProblem("The server could not be reached; nothing was sent. Check the connection and try again.");
    }
  });

  // --- small controls --------------------------------------------------------

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
    var range = target.closest("[data-range-minutes]");
    if (range) { startedWithin(event, range); }
  });

  // A bulk action was done (its answer triggers sagas-changed): the selection it
  // acted on is cleared, so the table refreshes and polls again.
  document.addEventListener("sagas-changed", function () {
    document.querySelectorAll("input[name=saga], input[data-select-all]").forEach(function (box) {
      box.checked = false;
    });
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

  // --- focus -----------------------------------------------------------------

  // A panel that opens, or the outcome that replaces it, takes the focus, so
  // keyboard and screen-reader users land in it.
  function focusPanel(target) {
    if (target && target.hasAttribute && target.hasAttribute("data-focus-on-swap")) {
      var first = target.querySelector("textarea, input:not([type=hidden]), select, button");
      if (first) { first.focus(); }
    }
  }
  // The outcome of a person's act ([data-takes-focus], e.g. "You approved this
  // request") takes the focus once, so the next Tab leads on to the next item.
  function focusOutcome() {
    var outcome = document.querySelector("[data-takes-focus]");
    if (outcome) {
      outcome.removeAttribute("data-takes-focus");
      outcome.focus();
    }
  }
  document.addEventListener("htmx:afterSwap", function (event) { focusPanel(event.detail.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    focusPanel(document.getElementById(event.detail.target.id) || event.detail.target);
  });
  document.addEventListener("htmx:afterSettle", focusOutcome);

  // --- the saga list's filters: times in the browser's zone -------------------

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // A moment as the value of a datetime-local field, in the browser's zone.
  function localValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  // A datetime-local value (the browser's zone) as ISO 8601 with its offset,
  // which the server reads exactly; without it, it would read UTC.
  function withOffset(value) {
    var date = new Date(value);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(value) || isNaN(date.getTime())) { return value; }
    var minutes = -date.getTimezoneOffset();
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return value + ":00" + sign + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }

  function timeFields(form) {
    return form.querySelectorAll("input[type=datetime-local][data-local-time]");
  }

  function setUpFilters(form) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    form.querySelectorAll("[data-zone-label]").forEach(function (label) {
      label.textContent = zone ? "your time, " + zone : "your time";
    });
    // The server renders the chosen moments in UTC; show them in the browser's zone.
    timeFields(form).forEach(function (field) {
      var moment = field.getAttribute("data-moment");
      if (moment) {
        var date = new Date(moment);
        if (!isNaN(date.getTime())) { field.value = localValue(date); }
      }
      field.setAttribute("data-zone", "local");
    });
    // On a phone the filters would fill the first screen: folded unless one is set.
    var more = form.querySelector("details[data-fold-on-phone]");
    var phone = window.matchMedia("(max-width: 640px)");
    if (more) {
      more.open = !phone.matches || more.hasAttribute("data-active");
      phone.addEventListener("change", function () { if (!phone.matches) { more.open = true; } });
    }
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt;
    if (!(form instanceof HTMLFormElement) || !form.matches(".filters")) { return; }
    timeFields(form).forEach(function (field) {
      var value = event.detail.parameters[field.name];
      if (value) { event.detail.parameters[field.name] = withOffset(value); }
    });
  });

  // "Started in the last hour": from now minus that, in the browser's zone,
  // keeping every other filter of the form.
  function startedWithin(event, link) {
    var form = link.closest("form.filters");
    if (!form || !window.htmx) { return; }
    event.preventDefault();
    var from = new Date(Date.now() - 60000 * Number(link.getAttribute("data-range-minutes")));
    form.elements.created_after.value = localValue(from);
    form.elements.created_before.value = "";
    form.requestSubmit();
  }

  // --- sideways scrolling is marked ------------------------------------------

  function markScrollers(root) {
    root.querySelectorAll(".diagram-scroll, .table-wrap").forEach(function (box) {
      box.classList.toggle("scrolls-sideways", box.scrollWidth > box.clientWidth + 1);
    });
  }

  // --- the person's time zone: the browser's, reported once -------------------
  // Until a zone is chosen on the profile page, <body data-zone-report> asks
  // for the browser's; the server keeps it only while none is chosen
  // (dashboard/profile.py), and the next page shows dates in it.

  function reportZone() {
    var url = document.body.getAttribute("data-zone-report");
    if (!url || !window.fetch) { return; }
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    if (!zone) { return; }
    var headers = {};
    try { headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}"); } catch (e) { headers = {}; }
    document.body.removeAttribute("data-zone-report");
    var body = new URLSearchParams();
    body.set("time_zone", zone);
    fetch(url, { method: "POST", body: body, headers: headers, credentials: "same-origin" })
      .then(function (response) { document.body.setAttribute("data-zone-reported", response.ok ? zone : "refused"); })
      .catch(function () { /* the next page asks again */ });
  }

  function ready() {
    reportZone();
    configureMorph();
    document.querySelectorAll("form.filters").forEach(setUpFilters);
    markScrollers(document);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
  document.addEventListener("htmx:load", function (event) { markScrollers(event.detail.elt.parentNode || document); });
  window.addEventListener("resize", function () { markScrollers(document); });
})();
