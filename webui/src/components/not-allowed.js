// What an admin page shows when its admin-only API answered 403.
import { html } from "../html.js";

export function NotAllowed({ message }) {
  return html`<div id="not-allowed" class="alert alert-error" role="alert">${`Not allowed: ${message}`}</div>`;
}

/** The message to show for a 403, or null for any other error. */
export function forbiddenMessage(err) {
  return err && err.status === 403 ? err.message : null;
}
