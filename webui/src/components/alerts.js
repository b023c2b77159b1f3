// #alerts: the page's error alerts (dismissable, keyboard reachable) and notices.
import { html } from "../html.js";
import { alerts, dismissAlert } from "../alerts.js";
import { useStore } from "../store.js";

export function AlertList() {
  const list = useStore(alerts);
  return html`<div id="alerts" aria-live="polite">
    ${list.map(
      (a) => html`<div
        key=${a.id}
        class=${a.kind === "error" ? "alert alert-error" : "alert alert-info"}
        role=${a.kind === "error" ? "alert" : "status"}
      >
        <span class="alert-text">${a.message}</span>
        <button type="button" class="alert-dismiss" aria-label="Dismiss" title="Dismiss" onClick=${() => dismissAlert(a.id)}></button>
      </div>`,
    )}
  </div>`;
}
