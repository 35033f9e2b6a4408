/* storesync pages: live updates over server-sent events, and forms without a reload.
 *
 * Elements with data-live="URL" are fragments the server can render again. When an event
 * about a job or the cache arrives (GET /web/events, the session cookie authenticates it),
 * each fragment it concerns is fetched again, once however many events came together, and
 * swapped in. data-live-store / data-live-job narrow a fragment to one store or job. Nothing
 * polls: a fragment whose figures expire at a known time (data-expires-at) reloads once then.
 * Forms with data-enhance post with fetch and the CSRF token, and the page stays put. Every
 * page works without this script too: forms post and redirect, links sort and filter.
 */
(function () {
  "use strict";

  var KINDS = ["job.queued", "job.started", "job.progress", "job.completed", "job.failed",
    "job.retried", "job.cancelled", "cache.updated", "cache.stale"];
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = tokenMeta ? tokenMeta.getAttribute("content") : "";
  var timers = {};
  var expiryTimers = {};
  var leaving = false;  // the page is being left (a link, a plain form): change nothing

  function say(text) {
    var status = document.getElementById("live-status");
    if (status) { status.textContent = text; }
  }

  function toSignIn() {
    if (leaving) { return; }
    window.location.assign("/sign-in?next=" +
      encodeURIComponent(window.location.pathname + window.location.search));
  }

  function swap(element, html) {
    var focused = document.activeElement && document.activeElement.id;
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var fresh = template.content.firstElementChild;
    if (!fresh) { return; }
    element.replaceWith(fresh);
    if (focused) {
      var again = document.getElementById(focused);
      if (again) { again.focus(); }
    }
    enhance(fresh);
  }

  function reload(id) {
    var element = document.getElementById(id);
    if (!element) { return Promise.resolve(); }
    return fetch(element.getAttribute("data-live"), {
      credentials: "same-origin", headers: { "Accept": "text/html" }
    }).then(function (response) {
      if (response.status === 401) { toSignIn(); return null; }
      return response.ok ? response.text() : null;
    }).then(function (html) {
      var current = document.getElementById(id);
      if (html && current) { swap(current, html); }
    }).catch(function () { /* the next event tries again */ });
  }

  function schedule(element) {
    var id = element.id;
    if (!id || timers[id]) { return; }
    timers[id] = window.setTimeout(function () {
      delete timers[id];
      reload(id);
    }, 120);
  }

  function reloadAll() {
    document.querySelectorAll("[data-live]").forEach(schedule);
  }

  function concerns(element, data) {
    var store = element.getAttribute("data-live-store");
    var job = element.getAttribute("data-live-job");
    if (store && String(data.store_id) !== store) { return false; }
    if (job && String(data.job_id) !== job) { return false; }
    return true;
  }

  function onEvent(kind, data) {
    document.querySelectorAll("[data-live]").forEach(function (element) {
      if (concerns(element, data)) { schedule(element); }
    });
    var figures = document.getElementById("figures");
    if (figures && concerns(figures, data)) {
      if (kind === "job.completed") { say("Sync finished: the figures are up to date."); }
      if (kind === "job.failed") { say("Sync failed: " + (data.error_message || "see the job")); }
    }
  }

  function setConnection(state, text) {
    var indicator = document.querySelector("[data-conn]");
    if (indicator) {
      indicator.setAttribute("data-conn", state);
      indicator.textContent = text;
    }
  }

  function connect() {
    var url = document.body.getAttribute("data-events");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    // What happened between rendering the page and opening the stream is not in the stream:
    // once it is open (the server subscribes before it says "ready"), read the fragments
    // again; the same after a reconnect.
    var missed = true;
    KINDS.forEach(function (kind) {
      source.addEventListener(kind, function (event) {
        try { onEvent(kind, JSON.parse(event.data)); } catch (error) { reloadAll(); }
      });
    });
    source.addEventListener("ready", function () {
      setConnection("live", "live");
      if (missed) { reloadAll(); }
      missed = false;
    });
    source.addEventListener("resync", reloadAll);
    source.onerror = function () {
      if (leaving) { return; }
      missed = true;
      if (source.readyState === EventSource.CLOSED) {
        setConnection("offline", "offline: reload the page");
        // A refused stream (signed out) is not retried by the browser: check why.
        fetch("/web/queue", { credentials: "same-origin" }).then(function (response) {
          if (response.status === 401) { toSignIn(); }
        });
      } else {
        setConnection("connecting", "reconnecting…");
      }
    };
  }

  function armExpiry(element) {
    var at = element.getAttribute("data-expires-at");
    if (!at || !element.id) { return; }
    window.clearTimeout(expiryTimers[element.id]);
    var wait = Date.parse(at) - Date.now() + 1000;
    if (isNaN(wait) || wait > 2147483000) { return; }
    expiryTimers[element.id] = window.setTimeout(function () { reload(element.id); },
      Math.max(wait, 0));
  }

  function showMessage(form, text) {
    var box = document.querySelector("[data-sync-message]");
    if (form.getAttribute("data-enhance") === "sync" && box) { box.textContent = text; }
    say(text);
  }

  function submit(form, event) {
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; }
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
    }).then(function (response) {
      if (response.redirected && response.url.indexOf("/sign-in") !== -1) { toSignIn(); }
      return response.json().then(function (body) { return [response, body]; },
        function () { return [response, {}]; });
    }).then(function (result) {
      var response = result[0], body = result[1];
      if (!response.ok) {
        showMessage(form, body.detail || "That did not work (" + response.status + ").");
      } else if (body.state === "fresh") {
        showMessage(form, "Already up to date: the figures come straight from the cache.");
      } else if (body.state === "queued") {
        showMessage(form, body.created ? "Sync queued." : "A sync of this period is already on its way.");
      } else if (body.job) {
        showMessage(form, "Job " + body.job.id + " is " + body.job.status + ".");
      }
      reloadAll();
    }).catch(function () {
      showMessage(form, "The server could not be reached; try again.");
    }).then(function () {
      if (button && document.body.contains(button)) { button.disabled = false; }
    });
  }

  function toggleCustom(form) {
    var select = form.querySelector("select[name=period]");
    var dates = form.querySelector("[data-custom-dates]");
    if (!select || !dates) { return; }
    var update = function () { dates.hidden = select.value !== "custom"; };
    select.addEventListener("change", function () {
      update();
      if (!dates.hidden) {
        var first = dates.querySelector("input");
        if (first) { first.focus(); }
      }
    });
    update();
  }

  function enhance(root) {
    var scope = root || document;
    var forms = scope.matches && scope.matches("form[data-enhance]") ? [scope] : [];
    scope.querySelectorAll("form[data-enhance]").forEach(function (form) { forms.push(form); });
    forms.forEach(function (form) {
      form.addEventListener("submit", function (event) { submit(form, event); });
    });
    scope.querySelectorAll("form[data-picker]").forEach(toggleCustom);
    if (scope.matches && scope.matches("[data-expires-at]")) { armExpiry(scope); }
    scope.querySelectorAll("[data-expires-at]").forEach(armExpiry);
  }

  window.addEventListener("beforeunload", function () { leaving = true; });
  window.addEventListener("pageshow", function () { leaving = false; });

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    connect();
  });
}());
