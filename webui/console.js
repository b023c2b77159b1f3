// mininova web console: noVNC (from npm, served under /ui/novnc/) against the console proxy.
// The console URL carries a console token: /ui/console.html?token=T
import RFB from "./novnc/core/rfb.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const token = params.get("token") || "";
const instance = params.get("instance") || "";

const state = { state: "loading", reason: "", name: "", rfb: null, updates: 0 };
window.mininovaConsole = state; // for tests and debugging

function setState(name, text) {
  state.state = name;
  document.body.dataset.state = name;
  $("status").textContent = text;
}

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
}

function query() {
  const q = new URLSearchParams({ token });
  if (instance) q.set("instance", instance);
  return q.toString();
}

// Ask the proxy about the token before connecting: it answers with the instance name, or
// why the token is refused (expired, invalid, instance deleted, ...). Never consumes it.
async function precheck() {
  let resp;
  try {
    resp = await fetch(`/console/info?${query()}`, { cache: "no-store" });
  } catch (err) {
    return { ok: false, reason: "unreachable", message: `The console service is unreachable (${err}).` };
  }
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (resp.ok && body && body.console) return { ok: true, console: body.console };
  const error = (body && body.error) || {};
  return { ok: false, reason: error.reason || `http_${resp.status}`,
           message: error.message || `The console is unavailable (HTTP ${resp.status}).` };
}

function refused(info) {
  state.reason = info.reason;
  setState("error", info.reason === "expired" ? "Token expired" : "Unavailable");
  showMessage(info.message);
  $("cad").disabled = true;
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${window.location.host}/console/websockify?${query()}`;
  $("message").hidden = true;
  $("reconnect").hidden = true;
  setState("connecting", "Connecting…");
  let rfb;
  try {
    rfb = new RFB($("screen"), url, { wsProtocols: ["binary"], shared: true });
  } catch (err) {
    refused({ reason: "client_error", message: `Could not start the console: ${err}` });
    return;
  }
  state.rfb = rfb;
  rfb.scaleViewport = $("scale").checked;
  rfb.resizeSession = false;
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => {
    setState("connected", "Connected");
    $("cad").disabled = false;
    rfb.focus();
  });
  rfb.addEventListener("desktopname", (e) => {
    if (!state.name && e.detail.name) $("name").textContent = e.detail.name;
  });
  rfb.addEventListener("securityfailure", (e) => {
    refused({ reason: "security", message: `VNC security failure: ${e.detail.reason || e.detail.status}` });
  });
  rfb.addEventListener("disconnect", async (e) => {
    $("cad").disabled = true;
    state.rfb = null;
    // Find out why: the token may have expired, been used, or the instance may be gone.
    const info = await precheck();
    if (!info.ok) {
      refused(info);
      return;
    }
    setState("disconnected", e.detail.clean ? "Disconnected" : "Connection lost");
    showMessage(e.detail.clean ? "The console session ended."
                               : "The console connection was lost.", "info");
    $("reconnect").hidden = false;
  });
}

async function main() {
  $("scale").addEventListener("change", () => {
    if (state.rfb) state.rfb.scaleViewport = $("scale").checked;
  });
  $("cad").addEventListener("click", () => { if (state.rfb) { state.rfb.sendCtrlAltDel(); state.rfb.focus(); } });
  $("reconnect").addEventListener("click", () => start());
  await start();
}

async function start() {
  if (!token) {
    refused({ reason: "invalid", message: "No console token in the URL. Ask for a console URL with `openstack console url show <server>`." });
    return;
  }
  setState("loading", "Checking token…");
  const info = await precheck();
  if (!info.ok) {
    refused(info);
    return;
  }
  state.name = info.console.instance.name;
  $("name").textContent = state.name;
  document.title = `${state.name} - console - mininova`;
  connect();
}

main();
