// Server action buttons (button[data-action]) and what they open: the snapshot dialog, the
// console panel (section#console-panel) and the console log panel (section#log-panel).
// Shared by the student's servers page and the instructor's all-servers page.
import { html, useEffect, useRef, useState } from "../html.js";
import { post, del } from "../api.js";
import { notice, showError } from "../alerts.js";
import { confirmAction } from "./confirm.js";
import { InlineError, Modal } from "./dialog.js";

const ACTIONS = {
  start: { label: "Start", body: { "os-start": null } },
  stop: { label: "Stop", body: { "os-stop": null } },
  "reboot-soft": { label: "Reboot", body: { reboot: { type: "SOFT" } } },
  "reboot-hard": { label: "Hard reboot", body: { reboot: { type: "HARD" } } },
  pause: { label: "Pause", body: { pause: null } },
  unpause: { label: "Unpause", body: { unpause: null } },
  suspend: { label: "Suspend", body: { suspend: null } },
  resume: { label: "Resume", body: { resume: null } },
  lock: { label: "Lock", body: { lock: null } },
  unlock: { label: "Unlock", body: { unlock: null } },
  snapshot: { label: "Snapshot" },
  console: { label: "Console" },
  log: { label: "Log" },
  delete: { label: "Delete" },
};

// Power/state actions valid in each Nova status.
const BY_STATUS = {
  ACTIVE: ["stop", "reboot-soft", "reboot-hard", "pause", "suspend"],
  SHUTOFF: ["start"],
  PAUSED: ["unpause"],
  SUSPENDED: ["resume"],
  ERROR: ["reboot-hard"],
};
const SNAPSHOT_STATUSES = new Set(["ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"]);
const ALWAYS = ["console", "log", "delete"];

/** [{name, label, disabled}] for a server, in display order. */
export function actionsFor(server) {
  const status = server.status;
  const busy = !!server["OS-EXT-STS:task_state"];
  const list = (BY_STATUS[status] || []).map((name) => ({ name, disabled: busy }));
  if (status !== "DELETED") list.push({ name: server.locked ? "unlock" : "lock", disabled: false });
  if (SNAPSHOT_STATUSES.has(status)) list.push({ name: "snapshot", disabled: busy });
  for (const name of ALWAYS) list.push({ name, disabled: false });
  return list.map((a) => ({ ...a, label: ACTIONS[a.name].label }));
}

export function ActionButtons({ server, onAction, busy = false }) {
  return html`<div class="actions" role="group" aria-label=${`Actions for ${server.name}`}>
    ${actionsFor(server).map(
      (a) => html`<button
        type="button"
        key=${a.name}
        data-action=${a.name}
        class=${a.name === "delete" ? "small danger" : "small"}
        disabled=${a.disabled || busy}
        title=${`${a.label} ${server.name}`}
        onClick=${() => onAction(a.name, server)}
      >${a.label}</button>`,
    )}
  </div>`;
}

/** The path and query of a console URL (same origin: the iframe never leaves it). */
export function consolePath(url) {
  const u = new URL(url, window.location.href);
  return `${u.pathname}${u.search}`;
}

/**
 * useServerActions(refresh) → {perform(action, server), busy: {id: true}, panels}.
 * `panels` (snapshot dialog, console and log panels) is rendered once by the page.
 */
export function useServerActions(refresh) {
  const [busy, setBusy] = useState({});
  const [consoleOf, setConsoleOf] = useState(null); // {server, path}
  const [logOf, setLogOf] = useState(null); // {server, output, loading, error}
  const [snapshotOf, setSnapshotOf] = useState(null); // server

  const mark = (id, on) =>
    setBusy((b) => {
      const next = { ...b };
      if (on) next[id] = true;
      else delete next[id];
      return next;
    });

  async function withBusy(server, fn) {
    mark(server.id, true);
    try {
      await fn();
    } finally {
      mark(server.id, false);
    }
  }

  async function loadLog(server) {
    setLogOf((l) => ({ server, output: l && l.server.id === server.id ? l.output : "", loading: true }));
    try {
      const data = await post(`/compute/v2.1/servers/${server.id}/action`, {
        "os-getConsoleOutput": { length: 200 },
      });
      setLogOf({ server, output: (data && data.output) || "", loading: false });
    } catch (err) {
      if (err.expired) return;
      setLogOf({ server, output: "", loading: false, error: err.message });
    }
  }

  async function perform(action, server) {
    const label = `${ACTIONS[action] ? ACTIONS[action].label : action} ${server.name}`;
    try {
      if (action === "delete") {
        const ok = await confirmAction({
          title: "Delete server?",
          message: `Delete server "${server.name}"? Its disk is destroyed; this cannot be undone.`,
          ok: "Delete",
        });
        if (!ok) return;
        await withBusy(server, () => del(`/compute/v2.1/servers/${server.id}`));
        if (consoleOf && consoleOf.server.id === server.id) setConsoleOf(null);
      } else if (action === "console") {
        await withBusy(server, async () => {
          const data = await post(`/compute/v2.1/servers/${server.id}/remote-consoles`, {
            remote_console: { protocol: "vnc", type: "novnc" },
          });
          setConsoleOf({ server, path: consolePath(data.remote_console.url) });
        });
        return;
      } else if (action === "log") {
        await loadLog(server);
        return;
      } else if (action === "snapshot") {
        setSnapshotOf(server);
        return;
      } else {
        await withBusy(server, () =>
          post(`/compute/v2.1/servers/${server.id}/action`, ACTIONS[action].body),
        );
      }
    } catch (err) {
      showError(err, { prefix: label });
    }
    refresh();
  }

  const panels = html`
    <${SnapshotDialog}
      server=${snapshotOf}
      onClose=${() => setSnapshotOf(null)}
      onDone=${(name) => {
        setSnapshotOf(null);
        notice(`Snapshot "${name}" requested: it appears on the Images page when it is ready.`);
        refresh();
      }}
    />
    ${consoleOf &&
    html`<${ConsolePanel} key=${consoleOf.path} console=${consoleOf} onClose=${() => setConsoleOf(null)} />`}
    ${logOf &&
    html`<${LogPanel}
      log=${logOf}
      onRefresh=${() => loadLog(logOf.server)}
      onClose=${() => setLogOf(null)}
    />`}
  `;

  return { perform, busy, panels };
}

function SnapshotDialog({ server, onClose, onDone }) {
  return html`<${Modal} id="snapshot-dialog" open=${!!server} onClose=${onClose} title="Create a snapshot">
    ${server && html`<${SnapshotForm} server=${server} onClose=${onClose} onDone=${onDone} />`}
  <//>`;
}

function SnapshotForm({ server, onClose, onDone }) {
  const [name, setName] = useState(`${server.name}-snapshot`);
  const [error, setError] = useState("");
  const [sending, setSending] = useState(false);
  async function submit(e) {
    e.preventDefault();
    const wanted = name.trim();
    if (!wanted) {
      setError("Give the snapshot a name.");
      return;
    }
    setSending(true);
    setError("");
    try {
      await post(`/compute/v2.1/servers/${server.id}/action`, { createImage: { name: wanted } });
      onDone(wanted);
    } catch (err) {
      if (!err.expired) setError(err.message);
      setSending(false);
    }
  }
  return html`<form id="snapshot-form" onSubmit=${submit} novalidate>
    <p>An image of <strong>${server.name}</strong>'s disk, usable to launch new servers.</p>
    <label class="field">
      <span>Snapshot name</span>
      <input name="snapshot-name" value=${name} onInput=${(e) => setName(e.target.value)} required maxlength="255" />
    </label>
    <${InlineError} message=${error} />
    <div class="dialog-buttons">
      <button type="button" onClick=${onClose}>Cancel</button>
      <button type="submit" id="snapshot-submit" class="primary" disabled=${sending}>
        ${sending ? "Creating…" : "Create snapshot"}
      </button>
    </div>
  </form>`;
}

function ConsolePanel({ console: c, onClose }) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current) {
      ref.current.scrollIntoView({ block: "nearest", behavior: "smooth" });
      ref.current.querySelector("h2").focus();
    }
  }, []);
  return html`<section id="console-panel" class="card panel" ref=${ref} aria-labelledby="console-title">
    <div class="panel-head">
      <h2 id="console-title" tabindex="-1">Console: ${c.server.name}</h2>
      <span class="spacer"></span>
      <a id="console-open" href=${c.path} target="_blank" rel="noopener noreferrer">Open in new tab</a>
      <button type="button" id="console-close" onClick=${onClose}>Close console</button>
    </div>
    <div class="console-frame-wrap">
      <iframe id="console-frame" src=${c.path} title=${`Console of ${c.server.name}`}></iframe>
    </div>
  </section>`;
}

function LogPanel({ log, onRefresh, onClose }) {
  const ref = useRef(null);
  const pre = useRef(null);
  useEffect(() => {
    if (ref.current) {
      ref.current.scrollIntoView({ block: "nearest", behavior: "smooth" });
      ref.current.querySelector("h2").focus();
    }
  }, [log.server.id]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [log.output]);
  return html`<section id="log-panel" class="card panel" ref=${ref} aria-labelledby="log-title">
    <div class="panel-head">
      <h2 id="log-title" tabindex="-1">Console log: ${log.server.name}</h2>
      <span class="spacer"></span>
      <button type="button" id="log-refresh" onClick=${onRefresh} disabled=${log.loading}>
        ${log.loading ? "Loading…" : "Refresh"}
      </button>
      <button type="button" id="log-close" onClick=${onClose}>Close log</button>
    </div>
    <${InlineError} message=${log.error} />
    <pre id="console-log" tabindex="0" aria-busy=${log.loading ? "true" : "false"}>${log.output ||
    (log.loading ? "" : "(no output yet)")}</pre>
  </section>`;
}
