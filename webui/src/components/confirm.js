// The one in-page confirmation dialog (dialog#confirm, #confirm-ok, #confirm-cancel).
import { html } from "../html.js";
import { createStore, useStore } from "../store.js";
import { Modal } from "./dialog.js";

const pending = createStore(null);

/** confirmAction({title, message, ok}) → Promise<boolean>. */
export function confirmAction({ title = "Are you sure?", message = "", ok = "Delete" } = {}) {
  return new Promise((resolve) => {
    const previous = pending.get();
    if (previous) previous.resolve(false);
    pending.set({ title, message, ok, resolve });
  });
}

export function ConfirmDialog() {
  const req = useStore(pending);
  const finish = (answer) => {
    const current = pending.get();
    if (!current) return;
    pending.set(null);
    current.resolve(answer);
  };
  return html`<${Modal} id="confirm" open=${!!req} onClose=${() => finish(false)} title=${req ? req.title : "Confirm"}>
    ${req &&
    html`<p class="confirm-message">${req.message}</p>
      <div class="dialog-buttons">
        <button type="button" id="confirm-cancel" onClick=${() => finish(false)}>Cancel</button>
        <button type="button" id="confirm-ok" class="danger" onClick=${() => finish(true)}>${req.ok}</button>
      </div>`}
  <//>`;
}
