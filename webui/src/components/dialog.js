// Modal dialogs (<dialog> + showModal): focus their first field when opened, close on Escape.
import { html, useEffect, useRef } from "../html.js";

const FOCUSABLE =
  "input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled]), button:not([disabled]), a[href]";

export function focusFirst(root) {
  const el = root && root.querySelector(FOCUSABLE);
  if (el) el.focus();
}

/** <Modal id open onClose title>children</Modal>; children are mounted only while open. */
export function Modal({ id, open, onClose, title, children, wide = false }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      if (typeof d.showModal === "function") d.showModal();
      else d.setAttribute("open", "");
      focusFirst(d);
    } else if (!open && d.open) {
      d.close();
    }
  }, [open]);
  return html`<dialog
    id=${id}
    ref=${ref}
    class=${wide ? "modal modal-wide" : "modal"}
    aria-labelledby=${`${id}-title`}
    onClose=${() => open && onClose && onClose()}
  >
    <h2 id=${`${id}-title`} class="modal-title">${title}</h2>
    ${open ? children : null}
  </dialog>`;
}

/** An error inside a dialog or a form. */
export function InlineError({ message, id }) {
  if (!message) return null;
  return html`<div class="alert alert-error" role="alert" id=${id}>${message}</div>`;
}
