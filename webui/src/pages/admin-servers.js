// #/admin/servers: every project's servers, with filters mapped to Nova's query parameters.
import { html, useEffect, useRef, useState } from "../html.js";
import { get, query } from "../api.js";
import { dismissKey, showError } from "../alerts.js";
import { usePoll } from "../poll.js";
import { forbiddenMessage, NotAllowed } from "../components/not-allowed.js";
import { useServerActions } from "../components/server-actions.js";
import { ServerTable, visibleServers } from "../components/server-table.js";
import { useNames } from "./servers.js";

const POLL_MS = 3000;
const STATUSES = [
  "ACTIVE", "BUILD", "SHUTOFF", "PAUSED", "SUSPENDED", "ERROR", "REBOOT", "HARD_REBOOT",
  "RESIZE", "VERIFY_RESIZE", "MIGRATING", "SHELVED", "SHELVED_OFFLOADED", "RESCUE", "UNKNOWN",
];

/** A project filter typed as a name or an id → the project id to ask Nova for. */
export function resolveProject(text, projects) {
  const v = text.trim();
  if (!v) return "";
  const byName = projects.find((p) => p.name === v);
  if (byName) return byName.id;
  const byNameCi = projects.filter((p) => p.name.toLowerCase() === v.toLowerCase());
  if (byNameCi.length === 1) return byNameCi[0].id;
  return v;
}

export function AdminServersPage() {
  const [forbidden, setForbidden] = useState(null);
  const [servers, setServers] = useState(null);
  const [hosts, setHosts] = useState([]);
  const [projects, setProjects] = useState([]);
  const [filters, setFilters] = useState({ name: "", project: "", status: "", host: "" });
  const [applied, setApplied] = useState(filters);
  const gate = useRef(false);
  const projectsAt = useRef(0);
  const names = useNames();

  // Typing settles for a moment before the list is asked again.
  useEffect(() => {
    const t = setTimeout(() => setApplied(filters), 350);
    return () => clearTimeout(t);
  }, [filters]);

  async function loadProjects() {
    projectsAt.current = Date.now();
    try {
      const data = await get("/identity/v3/projects");
      const list = (data && data.projects) || [];
      setProjects(list);
      return list;
    } catch (err) {
      if (forbiddenMessage(err)) throw err;
      return projects;
    }
  }

  const refresh = usePoll(
    async () => {
      if (forbidden) return;
      try {
        let known = projects;
        if (!gate.current) {
          // Admin-only first (the compute hosts, also the host filter's suggestions).
          const svc = await get("/compute/v2.1/os-services?binary=nova-compute");
          setHosts([...new Set(((svc && svc.services) || []).map((s) => s.host))].sort());
          known = await loadProjects();
          gate.current = true;
        }
        const params = {
          all_tenants: 1,
          name: applied.name.trim(),
          project_id: resolveProject(applied.project, known),
          status: applied.status,
          host: applied.host.trim(),
        };
        const data = await get(`/compute/v2.1/servers/detail${query(params)}`);
        const items = visibleServers(data && data.servers);
        setServers(items);
        names.noticeServers(items);
        const ids = new Set(known.map((p) => p.id));
        if (items.some((s) => !ids.has(s.tenant_id)) && Date.now() - projectsAt.current > 20000) loadProjects();
        dismissKey("all-servers-poll");
      } catch (err) {
        const msg = forbiddenMessage(err);
        if (msg) setForbidden(msg);
        else showError(err, { key: "all-servers-poll", prefix: "Cannot list the servers" });
      }
    },
    POLL_MS,
    [applied],
  );

  const actions = useServerActions(refresh);

  if (forbidden) return html`<div class="page"><${NotAllowed} message=${forbidden} /></div>`;
  if (!gate.current && servers === null) {
    return html`<div class="page"><h1>All servers</h1><p class="muted">Loading…</p></div>`;
  }

  const projectName = (id) => {
    const p = projects.find((x) => x.id === id);
    return p ? p.name : id;
  };
  const set = (key) => (e) => setFilters((f) => ({ ...f, [key]: e.target.value }));
  const extra = [
    { title: "Project", className: "project", render: (s) => html`<span title=${s.tenant_id}>${projectName(s.tenant_id)}</span>` },
    { title: "Host", className: "host", render: (s) => s["OS-EXT-SRV-ATTR:host"] || "—" },
  ];

  return html`<div class="page" id="admin-servers-page">
    <div class="page-head"><h1>All servers</h1>
      <span class="muted">${servers ? `${servers.length} shown` : ""}</span></div>
    <form id="server-filters" class="card filters" onSubmit=${(e) => { e.preventDefault(); setApplied(filters); }} role="search">
      <label class="field"><span>Name</span>
        <input id="filter-name" value=${filters.name} onInput=${set("name")} placeholder="regex, e.g. ^alice" autocomplete="off" /></label>
      <label class="field"><span>Project (name or id)</span>
        <input id="filter-project" value=${filters.project} onInput=${set("project")} list="filter-project-list" autocomplete="off" />
        <datalist id="filter-project-list">${projects.map((p) => html`<option key=${p.id} value=${p.name}></option>`)}</datalist></label>
      <label class="field"><span>Status</span>
        <select id="filter-status" value=${filters.status} onChange=${set("status")}>
          <option value="">(any)</option>
          ${STATUSES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
        </select></label>
      <label class="field"><span>Host</span>
        <input id="filter-host" value=${filters.host} onInput=${set("host")} list="filter-host-list" autocomplete="off" />
        <datalist id="filter-host-list">${hosts.map((h) => html`<option key=${h} value=${h}></option>`)}</datalist></label>
      <button type="button" onClick=${() => setFilters({ name: "", project: "", status: "", host: "" })}>Clear</button>
    </form>
    ${servers === null
      ? html`<p class="muted">Loading servers…</p>`
      : html`<${ServerTable}
          id="all-servers"
          servers=${servers}
          images=${names.images}
          flavors=${names.flavors}
          busy=${actions.busy}
          onAction=${actions.perform}
          extra=${extra}
          empty="No server matches."
        />`}
    ${actions.panels}
  </div>`;
}
