// Page-level alerts (#alerts): errors (class alert-error, role=alert) and notices.
import { createStore } from "./store.js";

export const alerts = createStore([]);
let seq = 0;

/** Show a message; an alert with the same `key` is replaced rather than repeated. */
export function pushAlert(message, { kind = "error", key = null } = {}) {
  const id = ++seq;
  alerts.set((list) => {
    const rest = key ? list.filter((a) => a.key !== key) : list;
    return [...rest, { id, key, kind, message: String(message) }].slice(-8);
  });
  return id;
}

export function notice(message, opts = {}) {
  return pushAlert(message, { ...opts, kind: "info" });
}

export function dismissAlert(id) {
  alerts.set((list) => list.filter((a) => a.id !== id));
}

export function dismissKey(key) {
  if (alerts.get().some((a) => a.key === key)) alerts.set((list) => list.filter((a) => a.key !== key));
}

export function clearAlerts() {
  alerts.set([]);
}

/** Show an API error as an alert (nothing when the session just expired: login says so). */
export function showError(err, { prefix = "", key = null } = {}) {
  if (err && err.expired) return;
  const message = (err && err.message) || String(err);
  pushAlert(prefix ? `${prefix}: ${message}` : message, { key });
}
