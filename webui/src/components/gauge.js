// A meter with "N of M" beside it; max -1 (or null) = unlimited.
import { html } from "../html.js";

export function Gauge({ label, used, max, unit = "", attrs = {} }) {
  const u = Number(used) || 0;
  const unlimited = max === undefined || max === null || Number(max) < 0;
  const m = unlimited ? Math.max(u, 1) : Number(max);
  const suffix = unit ? ` ${unit}` : "";
  const text = unlimited ? `${u} of unlimited${suffix}` : `${u} of ${m}${suffix}`;
  return html`<div class=${unlimited ? "gauge unlimited" : "gauge"}>
    <span class="gauge-label">${label}</span>
    <meter
      ...${attrs}
      min="0"
      max=${String(m)}
      value=${String(u)}
      low=${m * 0.7}
      high=${m * 0.9}
      optimum="0"
      data-unlimited=${unlimited ? "true" : "false"}
      aria-label=${`${label}: ${text}`}
    ></meter>
    <span class="gauge-text">${text}</span>
  </div>`;
}
