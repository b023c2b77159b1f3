// mininova dashboard: hash router and the shell (header, project switch, nav, alerts).
import { html, render, useEffect, useRef, useState } from "./html.js";
import { ui } from "./ui.js";
import { useStore } from "./store.js";
import { clearAlerts, showError } from "./alerts.js";
import { logout, myProjects, projectsChanged, switchProject } from "./auth.js";
import {
  consumeLogout, expireSession, isAdmin, project, rememberReturn, session, takeReturn, tokenExpired,
  userName,
} from "./session.js";
import { AlertList } from "./components/alerts.js";
import { ConfirmDialog } from "./components/confirm.js";
import { LoginPage } from "./pages/login.js";
import { ServersPage } from "./pages/servers.js";
import { ImagesPage } from "./pages/images.js";
import { KeypairsPage } from "./pages/keypairs.js";
import { AdminHostsPage } from "./pages/admin-hosts.js";
import { AdminServersPage } from "./pages/admin-servers.js";
import { RosterPage } from "./pages/roster.js";

const ROUTES = {
  "/servers": { title: "Servers", page: ServersPage },
  "/images": { title: "Images", page: ImagesPage },
  "/keypairs": { title: "Key pairs", page: KeypairsPage },
  "/admin/hosts": { title: "Hosts", page: AdminHostsPage, admin: true },
  "/admin/servers": { title: "All servers", page: AdminServersPage, admin: true },
  "/admin/roster": { title: "Class roster", page: RosterPage, admin: true },
};
const NAV = ["/servers", "/images", "/keypairs"];
const ADMIN_NAV = ["/admin/hosts", "/admin/servers", "/admin/roster"];

function currentPath() {
  const hash = window.location.hash || "";
  const path = hash.startsWith("#") ? hash.slice(1) : hash;
  return path.split("?")[0] || "";
}

function useRoute() {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const onHash = () => setPath(currentPath());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  return path;
}

function ProjectSwitch() {
  const s = useStore(session);
  const changed = useStore(projectsChanged);
  const current = project(s);
  const [projects, setProjects] = useState(null);
  const [switching, setSwitching] = useState(false);

  const loadedAt = useRef(0);
  const load = () => {
    loadedAt.current = Date.now();
    const token = s && s.token;
    myProjects()
      .then((list) => {
        if (session.get() && session.get().token === token) {
          setProjects(list.sort((a, b) => a.name.localeCompare(b.name)));
        }
      })
      .catch((err) => {
        if (!err.expired) console.warn("cannot list the projects", err);
      });
  };
  useEffect(load, [s && s.token, changed]);
  // New projects (a roster import) show up the next time the menu is used.
  const reload = () => {
    if (Date.now() - loadedAt.current > 3000) load();
  };

  const list = [...(projects || [])];
  if (current && !list.some((p) => p.id === current.id)) list.unshift(current);

  async function onChange(e) {
    const id = e.target.value;
    if (!id || (current && id === current.id)) return;
    setSwitching(true);
    try {
      await switchProject(id);
      clearAlerts();
    } catch (err) {
      showError(err, { prefix: "Cannot switch the project" });
      e.target.value = current ? current.id : "";
    }
    setSwitching(false);
  }

  return html`<label class="project-switch">
    <span class="visually-hidden">Project</span>
    <select id="project-switch" value=${current ? current.id : ""} onChange=${onChange} onFocus=${reload} onPointerDown=${reload} disabled=${switching} title="Switch project">
      ${!current && html`<option value="">(no project)</option>`}
      ${list.map((p) => html`<option key=${p.id} value=${p.id}>${p.name}</option>`)}
    </select>
  </label>`;
}

function Shell({ path, route }) {
  const s = useStore(session);
  const admin = isAdmin(s);
  const proj = project(s);
  const [busy, setBusy] = useState(false);

  async function onLogout() {
    setBusy(true);
    await logout();
    clearAlerts();
    setBusy(false);
    window.location.hash = "#/login";
  }

  const link = (p) => html`<a key=${p} href=${`#${p}`} aria-current=${p === path ? "page" : undefined}>${ROUTES[p].title}</a>`;
  const Page = route ? route.page : NotFound;
  return html`<div class="shell">
    <a class="skip-link" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <header class="topbar">
      <a class="brand" href="#/servers">mininova</a>
      <nav aria-label="Main">
        ${NAV.map(link)}
        ${admin && html`<span class="nav-sep" aria-hidden="true"></span>`}
        ${admin && ADMIN_NAV.map(link)}
      </nav>
      <span class="spacer"></span>
      <div class="userbox">
        <span id="whoami" title=${(s.body.roles || []).map((r) => r.name).join(", ")}>
          <span class="who-user">${userName(s)}</span>
          <span class="who-sep"> in </span>
          <span class="who-project">${proj ? proj.name : "(no project)"}</span>
          ${admin && html`<span class="role-badge"> (admin)</span>`}
        </span>
        <${ProjectSwitch} />
        <button type="button" id="logout" onClick=${onLogout} disabled=${busy}>Log out</button>
      </div>
    </header>
    <${AlertList} />
    <main id="main" tabindex="-1">
      <${Page} key=${`${path}|${proj ? proj.id : ""}`} />
    </main>
    <${ConfirmDialog} />
  </div>`;
}

function NotFound() {
  return html`<div class="page"><h1>Not found</h1><p>There is no such page. <a href="#/servers">Go to the servers</a>.</p></div>`;
}

function App() {
  const s = useStore(session);
  const path = useRoute();
  ui.route = path;

  // Route guards (the one place that navigates after a login): hash changes, no reloads.
  useEffect(() => {
    if (s && tokenExpired(s)) {
      expireSession(s.token);
      return;
    }
    const now = currentPath();
    if (!s) {
      const loggedOut = consumeLogout(); // a logout is no reason to come back here
      if (now !== "/login") {
        if (!loggedOut) rememberReturn(window.location.hash);
        window.location.replace("#/login");
      }
    } else if (s && (now === "" || now === "/" || now === "/login")) {
      window.location.replace(takeReturn() || "#/servers");
    }
  }, [s, path]);

  useEffect(() => {
    clearAlerts();
    const r = ROUTES[path];
    document.title = path === "/login" ? "Log in - mininova" : `${r ? r.title : "Not found"} - mininova`;
  }, [path]);

  if (!s || path === "/login") return s ? null : html`<${LoginPage} />`;
  if (path === "" || path === "/") return null;
  return html`<${Shell} path=${path} route=${ROUTES[path]} />`;
}

render(html`<${App} />`, document.getElementById("app"));
