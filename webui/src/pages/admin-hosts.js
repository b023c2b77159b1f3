// #/admin/hosts: compute hosts (hypervisors at 2.87 + services), polled every 5 s.
import { html, useState } from "../html.js";
import { get, HYPERVISOR_MICROVERSION } from "../api.js";
import { dismissKey, showError } from "../alerts.js";
import { usePoll } from "../poll.js";
import { Gauge } from "../components/gauge.js";
import { forbiddenMessage, NotAllowed } from "../components/not-allowed.js";

const POLL_MS = 5000;

export function AdminHostsPage() {
  const [data, setData] = useState(null); // {hypervisors, services}
  const [forbidden, setForbidden] = useState(null);

  usePoll(async () => {
    if (forbidden) return;
    try {
      // The admin-only call first: a member gets its 403 and nothing else is asked.
      const hv = await get("/compute/v2.1/os-hypervisors/detail", { microversion: HYPERVISOR_MICROVERSION });
      let services = [];
      try {
        services = ((await get("/compute/v2.1/os-services")) || {}).services || [];
      } catch (err) {
        if (forbiddenMessage(err)) throw err;
        showError(err, { key: "services-poll", prefix: "Cannot list the services" });
      }
      setData({ hypervisors: (hv && hv.hypervisors) || [], services });
      dismissKey("hosts-poll");
    } catch (err) {
      const msg = forbiddenMessage(err);
      if (msg) setForbidden(msg);
      else showError(err, { key: "hosts-poll", prefix: "Cannot list the hosts" });
    }
  }, POLL_MS);

  if (forbidden) return html`<div class="page"><${NotAllowed} message=${forbidden} /></div>`;
  if (!data) return html`<div class="page"><h1>Hosts</h1><p class="muted">Loading…</p></div>`;

  const hvs = [...data.hypervisors].sort((a, b) => a.hypervisor_hostname.localeCompare(b.hypervisor_hostname));
  const computeOf = (host) => data.services.find((s) => s.binary === "nova-compute" && s.host === host);
  const others = data.services.filter((s) => s.binary !== "nova-compute");
  const up = hvs.filter((h) => h.state === "up").length;

  return html`<div class="page" id="hosts-page">
    <div class="page-head">
      <h1>Hosts</h1>
      <span class="muted">${hvs.length} compute host${hvs.length === 1 ? "" : "s"}, ${up} up</span>
    </div>
    <div class="table-wrap">
      <table id="hosts" class="data">
        <thead>
          <tr>
            <th scope="col">Host</th>
            <th scope="col">State</th>
            <th scope="col">Status</th>
            <th scope="col">Servers</th>
            <th scope="col">vCPUs</th>
            <th scope="col">RAM</th>
            <th scope="col">Disk</th>
            <th scope="col">Type</th>
            <th scope="col">Address</th>
          </tr>
        </thead>
        <tbody>
          ${hvs.length === 0 && html`<tr class="empty"><td colspan="9">No compute host has joined yet.</td></tr>`}
          ${hvs.map((h) => {
            const svc = computeOf((h.service && h.service.host) || h.hypervisor_hostname);
            const reason = (svc && svc.disabled_reason) || (h.service && h.service.disabled_reason) || "";
            return html`<tr key=${h.id} data-host=${h.hypervisor_hostname} data-state=${h.state} data-status=${h.status}>
              <th scope="row" class="name">${h.hypervisor_hostname}</th>
              <td class="state"><span class=${`badge state-${h.state}`}>${h.state}</span></td>
              <td class="host-status" title=${reason}>${h.status}${reason ? html` <small>(${reason})</small>` : ""}</td>
              <td class="running">${h.running_vms ?? "—"}</td>
              <td class="res"><${Gauge} label="vCPUs" used=${h.vcpus_used} max=${h.vcpus} attrs=${{ "data-resource": "vcpus" }} /></td>
              <td class="res"><${Gauge} label="RAM" used=${h.memory_mb_used} max=${h.memory_mb} unit="MB" attrs=${{ "data-resource": "ram" }} /></td>
              <td class="res"><${Gauge} label="Disk" used=${h.local_gb_used} max=${h.local_gb} unit="GB" attrs=${{ "data-resource": "disk" }} /></td>
              <td>${h.hypervisor_type || ""}</td>
              <td>${h.host_ip || ""}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    </div>
    <h2>Services</h2>
    <div class="table-wrap">
      <table id="services" class="data">
        <thead>
          <tr><th scope="col">Service</th><th scope="col">Host</th><th scope="col">Zone</th><th scope="col">State</th><th scope="col">Status</th><th scope="col">Last seen</th></tr>
        </thead>
        <tbody>
          ${[...others, ...data.services.filter((s) => s.binary === "nova-compute")].map(
            (s) => html`<tr key=${s.id} data-service=${s.binary} data-service-host=${s.host}>
              <th scope="row">${s.binary}</th>
              <td>${s.host}</td>
              <td>${s.zone}</td>
              <td class="state"><span class=${`badge state-${s.state}`}>${s.state}</span></td>
              <td>${s.status}</td>
              <td>${s.updated_at ? s.updated_at.replace("T", " ").replace(/\.\d+$/, "") : "—"}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </div>`;
}
