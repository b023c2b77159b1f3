// The rows of a server list (tr[data-server-id][data-name], td.status) shared by the
// student's and the instructor's pages; `extra` adds columns (project, host) after the name.
import { html } from "../html.js";
import { flavorName, imageName, serverIps } from "../util.js";
import { ActionButtons } from "./server-actions.js";

export function visibleServers(servers) {
  return (servers || []).filter((s) => s.status !== "DELETED");
}

export function ServerTable({ id, servers, images, flavors, busy, onAction, extra = [], empty }) {
  const cols = 8 + extra.length;
  return html`<div class="table-wrap">
    <table id=${id} class="data collapse">
      <thead>
        <tr>
          <th scope="col">Name</th>
          ${extra.map((c) => html`<th scope="col" key=${c.title}>${c.title}</th>`)}
          <th scope="col">Status</th>
          <th scope="col">Task</th>
          <th scope="col">IP addresses</th>
          <th scope="col">Flavor</th>
          <th scope="col">Image</th>
          <th scope="col">Locked</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        ${servers.length === 0 &&
        html`<tr class="empty"><td colspan=${cols}>${empty || "No servers."}</td></tr>`}
        ${servers.map((s) => {
          const task = s["OS-EXT-STS:task_state"] || "";
          return html`<tr
            key=${s.id}
            data-server-id=${s.id}
            data-name=${s.name}
            data-status=${s.status}
            data-locked=${s.locked ? "true" : "false"}
          >
            <th scope="row" class="name">${s.name}</th>
            ${extra.map((c) => html`<td key=${c.title} class=${c.className} data-label=${c.title}>${c.render(s)}</td>`)}
            <td class="status" data-label="Status"><span class=${`badge status-${String(s.status).toLowerCase()}`}>${s.status}</span></td>
            <td class="task-state" data-label="Task">${task}</td>
            <td class="ips" data-label="IP addresses">${serverIps(s)}</td>
            <td class="flavor" data-label="Flavor">${flavorName(s, flavors)}</td>
            <td class="image" data-label="Image">${imageName(s, images)}</td>
            <td class="locked" data-label="Locked">${s.locked ? html`<span class="locked-flag" title=${s.locked_reason || "locked"}>locked</span>` : "no"}</td>
            <td class="row-actions" data-label="Actions"><${ActionButtons} server=${s} onAction=${onAction} busy=${!!busy[s.id]} /></td>
          </tr>`;
        })}
      </tbody>
    </table>
  </div>`;
}
