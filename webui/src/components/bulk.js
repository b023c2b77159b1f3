// Progress and per-item results of a bulk action (progress#bulk-progress, ul#bulk-results).
import { html, useCallback, useState } from "../html.js";

export function useBulk() {
  const [state, setState] = useState(null);
  const start = useCallback((title, items) => {
    setState({
      title,
      running: true,
      items: items.map((item) => ({ item, status: "pending", text: "waiting…" })),
    });
  }, []);
  const update = useCallback((item, status, text) => {
    setState((s) =>
      s && { ...s, items: s.items.map((it) => (it.item === item ? { ...it, status, text } : it)) },
    );
  }, []);
  const finish = useCallback(() => setState((s) => s && { ...s, running: false }), []);
  return { state, start, update, finish, running: !!(state && state.running) };
}

export function BulkStatus({ state }) {
  if (!state) return null;
  const done = state.items.filter((it) => it.status === "ok" || it.status === "failed").length;
  const failed = state.items.filter((it) => it.status === "failed").length;
  const total = state.items.length;
  return html`<section id="bulk-status" class="card" aria-labelledby="bulk-title">
    <h3 id="bulk-title">${state.title}</h3>
    <div class="progress-row">
      <progress id="bulk-progress" value=${String(done)} max=${String(Math.max(total, 1))}></progress>
      <span id="bulk-summary" role="status">
        ${state.running ? `${done} of ${total} done…` : `Done: ${total - failed} ok, ${failed} failed.`}
      </span>
    </div>
    <ul id="bulk-results">
      ${state.items.map(
        (it) => html`<li key=${it.item} data-item=${it.item} class=${it.status}>
          <strong>${it.item}</strong>: ${it.text}
        </li>`,
      )}
    </ul>
  </section>`;
}
