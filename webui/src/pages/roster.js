// #/admin/roster: the class roster. Import a class from a CSV (a project + user per student,
// member role for the student and the instructor, quotas), print the credentials sheet,
// give every student VMs (rescoped to each project), end the class (delete everything).
import { html, useEffect, useRef, useState } from "../html.js";
import { del, get, listImages, post, put, query } from "../api.js";
import { dismissKey, showError } from "../alerts.js";
import { projectsChanged, rescope, revoke } from "../auth.js";
import { usePoll } from "../poll.js";
import { currentToken, regionName, session, userName } from "../session.js";
import { byName, eachLimited, randomPassword, sleep, textUrl } from "../util.js";
import { BulkStatus, useBulk } from "../components/bulk.js";
import { confirmAction } from "../components/confirm.js";
import { forbiddenMessage, NotAllowed } from "../components/not-allowed.js";
import {
  CLASS_NAME, ROSTER_TAG, classTag, cloudsYaml, groupClasses, parseRosterCsv, projectName,
} from "../roster-data.js";

const POLL_MS = 5000;
const DELETE_WAIT_MS = 180000;

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The next free <username>-vm<i> index among a project's server names. */
export function nextVmIndex(names, username) {
  const re = new RegExp(`^${escapeRegExp(username)}-vm(\\d+)(?:-\\d+)?$`);
  let max = 0;
  for (const n of names) {
    const m = re.exec(n);
    if (m) max = Math.max(max, parseInt(m[1], 10));
  }
  return max + 1;
}

function quotaValue(text, label) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < -1) throw new Error(`${label} must be a whole number (-1 = unlimited).`);
  return n;
}

export function RosterPage() {
  const [forbidden, setForbidden] = useState(null);
  const [ready, setReady] = useState(false);
  const [classes, setClasses] = useState(new Map());
  const [selected, setSelected] = useState("");
  const [counts, setCounts] = useState({}); // project id → number of servers
  const [sheet, setSheet] = useState(null);
  const [choices, setChoices] = useState({ images: [], flavors: [] });
  const bulk = useBulk();
  const urls = useRef([]);

  const dropUrls = () => {
    for (const u of urls.current) URL.revokeObjectURL(u);
    urls.current = [];
  };
  useEffect(() => dropUrls, []);

  async function loadClasses() {
    const data = await get(`/identity/v3/projects${query({ tags: ROSTER_TAG })}`);
    const map = groupClasses((data && data.projects) || []);
    setClasses(map);
    return map;
  }

  async function loadCounts() {
    const data = await get("/compute/v2.1/servers/detail?all_tenants=1");
    const out = {};
    for (const s of (data && data.servers) || []) {
      if (s.status !== "DELETED") out[s.tenant_id] = (out[s.tenant_id] || 0) + 1;
    }
    setCounts(out);
  }

  useEffect(() => {
    (async () => {
      try {
        // Admin-only first: listing users needs the admin role (a member gets a 403).
        await get(`/identity/v3/users${query({ name: userName(), domain_id: "default" })}`);
        await loadClasses();
        setReady(true);
      } catch (err) {
        const msg = forbiddenMessage(err);
        if (msg) setForbidden(msg);
        else showError(err, { prefix: "Cannot load the classes" });
        return;
      }
      const [imgs, flvs] = await Promise.allSettled([
        listImages({ status: "active" }),
        get("/compute/v2.1/flavors/detail"),
      ]);
      setChoices({
        // Students boot in their own projects: only public (or community) images work there.
        images:
          imgs.status === "fulfilled"
            ? imgs.value
                .filter((i) => i.status === "active" && (i.visibility === "public" || i.visibility === "community"))
                .sort(byName)
            : [],
        flavors: flvs.status === "fulfilled" ? (flvs.value && flvs.value.flavors) || [] : [],
      });
    })();
  }, []);

  usePoll(
    async () => {
      if (!ready) return;
      try {
        await Promise.all([bulk.running ? null : loadClasses(), loadCounts()]);
        dismissKey("roster-poll");
      } catch (err) {
        showError(err, { key: "roster-poll", prefix: "Cannot refresh the classes" });
      }
    },
    POLL_MS,
    [ready],
  );

  if (forbidden) return html`<div class="page"><${NotAllowed} message=${forbidden} /></div>`;
  if (!ready) return html`<div class="page"><h1>Class roster</h1><p class="muted">Loading…</p></div>`;

  const members = classes.get(selected) || [];

  // ---- import -------------------------------------------------------------------------------
  async function runImport(form) {
    const cls = form.cls.trim();
    if (!CLASS_NAME.test(cls)) {
      showError(new Error("The class name may use letters, digits, - and _ only (e.g. cs101)."));
      return;
    }
    const students = parseRosterCsv(form.csv);
    if (!students.length) {
      showError(new Error("The roster is empty: one student per line, username[,email]."));
      return;
    }
    let quota;
    try {
      quota = {
        instances: quotaValue(form.instances, "Instances"),
        cores: quotaValue(form.cores, "Cores"),
        ram: quotaValue(form.ram, "RAM"),
      };
    } catch (err) {
      showError(err);
      return;
    }
    const names = students.map((s) => s.username);
    const unique = [...new Set(names)];
    bulk.start(`Importing class ${cls} (${unique.length} students)`, unique);
    const seen = new Set();
    let memberRole = null;
    let roleError = "";
    try {
      const data = await get(`/identity/v3/roles${query({ name: "member" })}`);
      const role = ((data && data.roles) || []).find((r) => r.name === "member");
      if (role) memberRole = role.id;
      else roleError = "Keystone has no role named member.";
    } catch (err) {
      roleError = `Cannot find the member role: ${err.message}`;
    }
    const instructor = session.get() && session.get().body.user.id;
    const created = [];
    for (const student of students) {
      const { username, email } = student;
      if (seen.has(username)) continue; // listed twice: the first line counts
      seen.add(username);
      if (!session.get()) break; // the session expired: the login page says so
      if (!memberRole) {
        bulk.update(username, "failed", roleError);
        continue;
      }
      const pname = projectName(cls, username);
      bulk.update(username, "pending", "creating…");
      let projectId = null;
      let userId = null;
      let step = "creating the project";
      try {
        const p = await post("/identity/v3/projects", {
          project: {
            name: pname,
            domain_id: "default",
            description: `Class ${cls}: ${username}`,
            tags: [ROSTER_TAG, classTag(cls)],
          },
        });
        projectId = p.project.id;
        step = "creating the user";
        const password = randomPassword(14);
        const user = { name: username, password, default_project_id: projectId, domain_id: "default" };
        if (email) user.email = email;
        const u = await post("/identity/v3/users", { user });
        userId = u.user.id;
        step = "giving the student the member role";
        await put(`/identity/v3/projects/${projectId}/users/${userId}/roles/${memberRole}`);
        step = "giving the instructor the member role";
        await put(`/identity/v3/projects/${projectId}/users/${instructor}/roles/${memberRole}`);
        step = "setting the quotas";
        await put(`/compute/v2.1/os-quota-sets/${projectId}`, { quota_set: quota });
        created.push({ username, password, project: pname, projectId, email });
        bulk.update(username, "ok", `created: project ${pname}, user ${username}`);
      } catch (err) {
        // Undo what this student got, so that the import can simply be run again.
        const undone = [];
        if (userId) await del(`/identity/v3/users/${userId}`).then(() => undone.push("user"), () => {});
        if (projectId) await del(`/identity/v3/projects/${projectId}`).then(() => undone.push("project"), () => {});
        const note = undone.length ? ` (the new ${undone.join(" and ")} removed again)` : "";
        bulk.update(username, "failed", `failed ${step}: ${err.message}${note}`);
      }
    }
    bulk.finish();
    if (created.length) {
      dropUrls();
      const origin = window.location.origin;
      const region = regionName();
      const rows = created.map((c) => {
        const url = textUrl(
          cloudsYaml({
            cloud: c.project,
            authUrl: `${origin}/identity/v3`,
            username: c.username,
            password: c.password,
            projectName: c.project,
            region,
          }),
          "application/x-yaml",
        );
        urls.current.push(url);
        return { ...c, cloudsUrl: url };
      });
      setSheet({ cls, rows, dashboard: `${origin}/ui/` });
    }
    projectsChanged.set((n) => n + 1);
    try {
      await loadClasses();
    } catch (_) {
      /* the poll tries again */
    }
    setSelected(cls);
  }

  // ---- give every student VMs -------------------------------------------------------------
  async function runLaunch({ image, flavor, count }) {
    const cls = selected;
    const n = parseInt(count, 10);
    if (!cls || !members.length) return showError(new Error("Choose a class first."));
    if (!image) return showError(new Error("Choose an image."));
    if (!flavor) return showError(new Error("Choose a flavor."));
    if (!Number.isInteger(n) || n < 1) return showError(new Error("The number of VMs must be at least 1."));
    bulk.start(`Launching ${n} VM${n === 1 ? "" : "s"} for each student of ${cls}`, members.map((m) => m.username));
    for (const m of members) {
      if (!session.get()) break;
      const admin = currentToken();
      let scoped = null;
      let step = "rescoping to the project";
      bulk.update(m.username, "pending", "launching…");
      try {
        scoped = (await rescope(admin, m.project.id, { expireOn401: false })).token;
        step = "listing the servers";
        const mine = await get("/compute/v2.1/servers", { token: scoped });
        const i = nextVmIndex(((mine && mine.servers) || []).map((s) => s.name), m.username);
        const name = `${m.username}-vm${i}`;
        step = "launching";
        await post(
          "/compute/v2.1/servers",
          { server: { name, imageRef: image, flavorRef: flavor, networks: "auto", min_count: n, max_count: n } },
          { token: scoped },
        );
        bulk.update(m.username, "ok", n === 1 ? `launched ${name}` : `launched ${n} servers (${name}-1 … ${name}-${n})`);
      } catch (err) {
        bulk.update(m.username, "failed", `failed ${step}: ${err.message}`);
      } finally {
        if (scoped) revoke(scoped).catch(() => {});
      }
    }
    bulk.finish();
    loadCounts().catch(() => {});
  }

  // ---- end of class -------------------------------------------------------------------------
  async function serversOf(projectId) {
    const data = await get(`/compute/v2.1/servers${query({ all_tenants: 1, project_id: projectId })}`);
    return ((data && data.servers) || []).filter((s) => s.status !== "DELETED");
  }

  async function endOfClass(m) {
    const pid = m.project.id;
    let step = "listing the servers";
    try {
      const servers = await serversOf(pid);
      step = "deleting the servers";
      const problems = [];
      for (const s of servers) {
        try {
          await del(`/compute/v2.1/servers/${s.id}`);
        } catch (err) {
          if (err.status !== 404) problems.push(`${s.name}: ${err.message}`);
        }
      }
      if (problems.length) throw new Error(problems.join("; "));
      step = "waiting for the servers to go";
      const deadline = Date.now() + DELETE_WAIT_MS;
      for (let left = servers.length; left > 0; ) {
        bulk.update(m.username, "pending", `waiting for ${left} server${left === 1 ? "" : "s"} to be deleted…`);
        await sleep(2000);
        left = (await serversOf(pid)).length;
        if (left && Date.now() > deadline) throw new Error(`${left} server(s) still there after 3 minutes.`);
      }
      step = "deleting the user";
      const users = await get(`/identity/v3/users${query({ name: m.username, domain_id: "default" })}`);
      const student = ((users && users.users) || []).find((u) => u.default_project_id === pid);
      if (student) await del(`/identity/v3/users/${student.id}`);
      step = "deleting the project";
      await del(`/identity/v3/projects/${pid}`);
      const gone = servers.length ? `${servers.length} server${servers.length === 1 ? "" : "s"}, ` : "";
      bulk.update(m.username, "ok", `deleted ${gone}${student ? "the user and " : ""}project ${m.project.name}`);
    } catch (err) {
      bulk.update(m.username, "failed", `failed ${step}: ${err.message}`);
    }
  }

  async function runDelete() {
    const cls = selected;
    const list = members;
    if (!cls || !list.length) return showError(new Error("Choose a class first."));
    const ok = await confirmAction({
      title: `End of class ${cls}?`,
      message: `Delete every server, user and project of class ${cls} (${list.length} student${list.length === 1 ? "" : "s"})? This cannot be undone.`,
      ok: "Delete the class",
    });
    if (!ok) return;
    bulk.start(`Ending class ${cls}`, list.map((m) => m.username));
    await eachLimited(list, 3, (m) => (session.get() ? endOfClass(m) : null));
    bulk.finish();
    projectsChanged.set((n) => n + 1);
    try {
      const map = await loadClasses();
      if (!map.has(cls)) setSelected("");
    } catch (_) {
      /* the poll tries again */
    }
    loadCounts().catch(() => {});
  }

  return html`<div class="page" id="roster-page">
    <div class="page-head"><h1>Class roster</h1></div>
    <${ImportForm} onImport=${runImport} busy=${bulk.running} />
    <${BulkStatus} state=${bulk.state} />
    ${sheet && html`<${CredentialsSheet} sheet=${sheet} onClose=${() => { setSheet(null); dropUrls(); }} />`}
    <section class="card" id="classes" aria-labelledby="classes-title">
      <h2 id="classes-title">Classes</h2>
      <label class="field">
        <span>Class</span>
        <select id="roster-select" value=${selected} onChange=${(e) => setSelected(e.target.value)}>
          <option value="">${classes.size ? "(choose a class)" : "(no class yet)"}</option>
          ${[...classes.entries()].map(
            ([cls, list]) => html`<option key=${cls} value=${cls} title=${`${list.length} student${list.length === 1 ? "" : "s"}`}>${cls}</option>`,
          )}
        </select>
      </label>
      ${selected && html`<${Students} cls=${selected} members=${members} counts=${counts} />`}
      <${LaunchForm} choices=${choices} disabled=${!selected || !members.length || bulk.running} onLaunch=${runLaunch} />
      <div class="danger-zone">
        <h3>End of class</h3>
        <p class="muted">Deletes every student's servers, then their users and projects.</p>
        <button type="button" id="bulk-delete" class="danger" disabled=${!selected || !members.length || bulk.running} onClick=${runDelete}>
          Delete class ${selected || ""}
        </button>
      </div>
    </section>
  </div>`;
}

function ImportForm({ onImport, busy }) {
  const [form, setForm] = useState({ cls: "", csv: "", instances: "2", cores: "2", ram: "1024" });
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.target.value }));
  async function loadFile(e) {
    const file = e.target.files && e.target.files[0];
    if (!file) return;
    try {
      const text = await file.text();
      setForm((f) => ({ ...f, csv: text }));
    } catch (err) {
      showError(new Error(`Cannot read ${file.name}: ${err.message || err}`));
    }
  }
  const count = parseRosterCsv(form.csv).length;
  return html`<form id="roster-form" class="card" onSubmit=${(e) => { e.preventDefault(); onImport(form); }} novalidate>
    <h2>Import a class</h2>
    <div class="form-grid">
      <label class="field">
        <span>Class name</span>
        <input id="roster-class" name="class" value=${form.cls} onInput=${set("cls")} placeholder="cs101" pattern="[A-Za-z0-9_-]+" autocomplete="off" required />
      </label>
      <label class="field">
        <span>Roster file (CSV)</span>
        <input id="roster-file" type="file" accept=".csv,text/csv,text/plain" onChange=${loadFile} />
      </label>
      <label class="field field-wide">
        <span>Students: one per line, <code>username[,email]</code> (a <code>username,email</code> header line is skipped)</span>
        <textarea id="roster-csv" rows="6" value=${form.csv} onInput=${set("csv")} spellcheck="false" placeholder=${"username,email\nalice,alice@example.edu\nbob"}></textarea>
      </label>
    </div>
    <fieldset class="quota-fields">
      <legend>Quota of each student</legend>
      <label class="field"><span>Instances</span><input id="roster-instances" type="number" min="-1" value=${form.instances} onInput=${set("instances")} /></label>
      <label class="field"><span>vCPUs</span><input id="roster-cores" type="number" min="-1" value=${form.cores} onInput=${set("cores")} /></label>
      <label class="field"><span>RAM (MB)</span><input id="roster-ram" type="number" min="-1" step="64" value=${form.ram} onInput=${set("ram")} /></label>
    </fieldset>
    <div class="form-actions">
      <button type="submit" id="roster-import" class="primary" disabled=${busy}>Import ${count ? `${count} student${count === 1 ? "" : "s"}` : "class"}</button>
    </div>
  </form>`;
}

function CredentialsSheet({ sheet, onClose }) {
  return html`<section id="credentials-sheet" class="card sheet" aria-labelledby="sheet-title">
    <div class="panel-head">
      <h2 id="sheet-title">Credentials: class ${sheet.cls}</h2>
      <span class="spacer"></span>
      <button type="button" id="print-sheet" class="primary no-print" onClick=${() => window.print()}>Print</button>
      <button type="button" class="no-print" onClick=${onClose}>Close</button>
    </div>
    <p class="warning no-print" role="note">
      These passwords exist only in this page's memory: mininova does not keep them readable.
      Print the sheet or download each student's <code>clouds.yaml</code> now; they are gone when
      you leave or reload this page.
    </p>
    <p>Dashboard: <strong class="dashboard-url">${sheet.dashboard}</strong></p>
    <div class="table-wrap">
      <table class="data" id="credentials">
        <thead>
          <tr><th scope="col">Username</th><th scope="col">Password</th><th scope="col">Project</th><th scope="col">Dashboard</th><th scope="col" class="no-print">clouds.yaml</th></tr>
        </thead>
        <tbody>
          ${sheet.rows.map(
            (r) => html`<tr key=${r.username} data-username=${r.username}>
              <th scope="row" class="username">${r.username}</th>
              <td class="password"><code>${r.password}</code></td>
              <td class="project">${r.project}</td>
              <td class="url">${sheet.dashboard}</td>
              <td class="no-print"><a href=${r.cloudsUrl} download="clouds.yaml" data-clouds-yaml=${r.username}>clouds.yaml</a></td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

function Students({ cls, members, counts }) {
  return html`<div class="table-wrap">
    <table id="roster-students" class="data">
      <caption>Students of ${cls}</caption>
      <thead><tr><th scope="col">Student</th><th scope="col">Project</th><th scope="col">Servers</th></tr></thead>
      <tbody>
        ${members.map(
          (m) => html`<tr key=${m.project.id} data-username=${m.username} data-project-id=${m.project.id}>
            <th scope="row">${m.username}</th>
            <td class="project">${m.project.name}</td>
            <td class="server-count">${counts[m.project.id] || 0}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function LaunchForm({ choices, disabled, onLaunch }) {
  const [image, setImage] = useState("");
  const [flavor, setFlavor] = useState("");
  const [count, setCount] = useState("1");
  const img = image || (choices.images[0] ? choices.images[0].id : "");
  const flv = flavor || (choices.flavors[0] ? choices.flavors[0].id : "");
  return html`<form id="bulk-launch-form" class="subcard" onSubmit=${(e) => { e.preventDefault(); onLaunch({ image: img, flavor: flv, count }); }} novalidate>
    <h3>Give every student VMs</h3>
    <p class="muted">Each student's servers boot in their own project, so only public images are listed.</p>
    <div class="form-row">
      <label class="field"><span>Image</span>
        <select id="bulk-image" value=${img} onChange=${(e) => setImage(e.target.value)}>
          ${choices.images.length === 0 && html`<option value="">(no public image)</option>`}
          ${choices.images.map((i) => html`<option key=${i.id} value=${i.id}>${i.name || i.id}</option>`)}
        </select></label>
      <label class="field"><span>Flavor</span>
        <select id="bulk-flavor" value=${flv} onChange=${(e) => setFlavor(e.target.value)}>
          ${choices.flavors.map((f) => html`<option key=${f.id} value=${f.id}>${f.name}</option>`)}
        </select></label>
      <label class="field"><span>VMs per student</span>
        <input id="bulk-count" type="number" min="1" value=${count} onInput=${(e) => setCount(e.target.value)} /></label>
      <button type="submit" id="bulk-launch" class="primary" disabled=${disabled}>Launch for every student</button>
    </div>
  </form>`;
}
