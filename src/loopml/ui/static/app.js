/* loopml dashboard behaviour: key entry, confirmed actions and labels through the JSON API.
 * The key is sent once, to /login, which answers with a signed HttpOnly session cookie; the
 * page never keeps the key (no sessionStorage). Actions go to the JSON API with that cookie,
 * whose own role checks decide what the key may do; their errors are shown as they are. */
(function () {
  "use strict";

  function api(url, body) {
    var headers = { "Content-Type": "application/json" };
    return fetch(url, { method: "POST", headers: headers, body: JSON.stringify(body || {}), credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (t) {
          var doc = null;
          try { doc = t ? JSON.parse(t) : null; } catch (e) { doc = { error: t }; }
          return { ok: r.ok, status: r.status, body: doc };
        });
      });
  }

  function show(node, ok, message) {
    node.textContent = message;
    node.className = "status " + (ok ? "ok" : "bad");
  }
  function failure(res) {
    var why = res.body && res.body.error ? res.body.error : "request failed";
    var name = { 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict", 429: "Too many requests" }[res.status] || "Error";
    return res.status + " " + name + ": " + why;
  }
  function needKey(node, res) {
    if (res.status !== 401) return false;
    node.innerHTML = "";
    var a = document.createElement("a");
    a.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    a.textContent = "Enter your API key again";
    node.className = "status bad";
    node.appendChild(document.createTextNode("The session has ended. "));
    node.appendChild(a);
    return true;
  }

  function confirmDialog(message) {
    var dlg = document.getElementById("confirm");
    return new Promise(function (resolve) {
      document.getElementById("confirm-text").textContent = message;
      document.getElementById("confirm-reason").value = "";
      dlg.addEventListener("close", function onClose() {
        dlg.removeEventListener("close", onClose);
        resolve(dlg.returnValue === "ok" ? document.getElementById("confirm-reason").value : null);
      });
      dlg.showModal();
    });
  }

  function initLogin() {
    var form = document.getElementById("login");
    if (!form) return;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var k = document.getElementById("key").value.trim(), err = document.getElementById("login-error");
      fetch("/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key: k }), credentials: "same-origin" })
        .then(function (r) { return r.json().then(function (doc) { return { ok: r.ok, status: r.status, body: doc }; }); })
        .then(function (res) {
          if (!res.ok) { err.textContent = failure(res); return; }
          location.assign(form.getAttribute("data-next") || "/");
        })
        .catch(function (e2) { err.textContent = "Could not reach the server: " + e2; });
    });
  }

  function initLogout() {
    var b = document.getElementById("logout");
    if (!b) return;
    b.addEventListener("click", function () {
      fetch("/logout", { method: "POST", credentials: "same-origin" }).then(function () { location.assign("/login"); });
    });
  }

  function initActions() {
    var status = document.getElementById("action-status");
    document.querySelectorAll("button.action").forEach(function (b) {
      b.addEventListener("click", function () {
        confirmDialog(b.getAttribute("data-confirm")).then(function (reason) {
          if (reason === null) { show(status, false, "Cancelled."); return; }
          var body = JSON.parse(b.getAttribute("data-body") || "{}");
          if (reason) body.reason = reason;
          show(status, true, "Working…");
          api(b.getAttribute("data-url"), body).then(function (res) {
            if (needKey(status, res)) return;
            if (!res.ok) { show(status, false, failure(res)); return; }
            show(status, true, "Done: " + b.getAttribute("data-action") + ". Reloading…");
            setTimeout(function () { location.reload(); }, 600);
          }).catch(function (e) { show(status, false, "Could not reach the server: " + e); });
        });
      });
    });
  }

  function initLabels() {
    document.querySelectorAll("button.label-save").forEach(function (b) {
      b.addEventListener("click", function () {
        var row = b.closest("tr"), cell = b.parentNode, status = cell.querySelector(".status");
        var input = cell.querySelector(".label-value"), value = input.value;
        if (input.tagName === "SELECT") value = JSON.parse(value);
        else if (value !== "" && !isNaN(Number(value))) value = Number(value);
        api("/v1/labels", { labels: [{ request_id: row.getAttribute("data-request-id"), label: value }] })
          .then(function (res) {
            if (needKey(status, res)) return;
            if (!res.ok) { show(status, false, failure(res)); return; }
            if (res.body.unknown && res.body.unknown.length) { show(status, false, "The log does not know this request id."); return; }
            show(status, true, "Saved.");
            row.classList.add("labelled");
            b.disabled = true;
          }).catch(function (e) { show(status, false, "Could not reach the server: " + e); });
      });
    });
  }

  function init() { initLogin(); initLogout(); initActions(); initLabels(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
