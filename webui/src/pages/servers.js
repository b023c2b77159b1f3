// #/servers: the project's servers (live), launching, actions, console, log and quotas.
import { html, useEffect, useRef, useState } from "../html.js";
import { get, listImages, post } from "../api.js";
import { dismissKey, showError } from "../alerts.js";
import { usePoll } from "../poll.js";
import { base64Utf8, byName } from "../util.js";
import { Gauge } from "../components/gauge.js";
import { InlineError, Modal } from "../components/dialog.js";
import { useServerActions } from "../components/server-actions.js";
import { ServerTable, visibleServers } from "../components/server-table.js";

const POLL_MS = 2000;

export function indexById(list) {
  const out = {};
  for (const item of list || []) out[item.id] = item;
  return out;
}

/** Image and flavor names for server rows; images re-read when an unknown one shows up. */
export function useNames() {
  const [images, setImages] = useState({});
  const [flavors, setFlavors] = useState({});
  const lastImages = useRef(0);
  const loadImages = async () => {
    lastImages.current = Date.now();
    try {
      setImages(indexById(await listImages()));
    } catch (_) {
      /* names fall back to ids */
    }
  };
  useEffect(() => {
    loadImages();
    get("/compute/v2.1/flavors/detail")
      .then((d) => setFlavors(indexById(d && d.flavors)))
      .catch(() => {});
  }, []);
  const noticeServers = (servers) => {
    const unknown = servers.some((s) => s.image && s.image.id && !images[s.image.id]);
    if (unknown && Date.now() - lastImages.current > 15000) loadImages();
  };
  return { images, flavors, noticeServers };
}

function Quotas({ limits }) {
  const a = (limits && limits.absolute) || null;
  return html`<section id="quotas" class="card" aria-labelledby="quotas-title">
    <h2 id="quotas-title">Quota</h2>
    ${a
      ? html`<div class="gauges">
          <${Gauge} label="Instances" used=${a.totalInstancesUsed} max=${a.maxTotalInstances} attrs=${{ "data-quota": "instances" }} />
          <${Gauge} label="vCPUs" used=${a.totalCoresUsed} max=${a.maxTotalCores} attrs=${{ "data-quota": "cores" }} />
          <${Gauge} label="RAM" used=${a.totalRAMUsed} max=${a.maxTotalRAMSize} unit="MB" attrs=${{ "data-quota": "ram" }} />
        </div>`
      : html`<p class="muted">Loading…</p>`}
  </section>`;
}

export function ServersPage() {
  const [servers, setServers] = useState(null);
  const [limits, setLimits] = useState(null);
  const [launchOpen, setLaunchOpen] = useState(false);
  const names = useNames();

  const refresh = usePoll(async () => {
    const [list, lim] = await Promise.allSettled([
      get("/compute/v2.1/servers/detail"),
      get("/compute/v2.1/limits"),
    ]);
    if (list.status === "fulfilled") {
      const items = visibleServers(list.value && list.value.servers);
      setServers(items);
      names.noticeServers(items);
      dismissKey("servers-poll");
    } else {
      showError(list.reason, { key: "servers-poll", prefix: "Cannot list the servers" });
    }
    if (lim.status === "fulfilled") setLimits(lim.value && lim.value.limits);
  }, POLL_MS);

  const actions = useServerActions(refresh);

  return html`<div class="page" id="servers-page">
    <div class="page-head">
      <h1>Servers</h1>
      <span class="spacer"></span>
      <button type="button" id="launch" class="primary" onClick=${() => setLaunchOpen(true)}>Launch server</button>
    </div>
    <${Quotas} limits=${limits} />
    ${servers === null
      ? html`<p class="muted" id="servers-loading">Loading servers…</p>`
      : html`<${ServerTable}
          id="servers"
          servers=${servers}
          images=${names.images}
          flavors=${names.flavors}
          busy=${actions.busy}
          onAction=${actions.perform}
          empty="No servers yet: launch one."
        />`}
    ${actions.panels}
    <${Modal} id="launch-dialog" open=${launchOpen} onClose=${() => setLaunchOpen(false)} title="Launch a server" wide=${true}>
      <${LaunchForm}
        onClose=${() => setLaunchOpen(false)}
        onLaunched=${() => {
          setLaunchOpen(false);
          refresh();
        }}
      />
    <//>
  </div>`;
}

function LaunchForm({ onClose, onLaunched }) {
  const [choices, setChoices] = useState(null); // {images, flavors, keypairs, groups}
  const [loadError, setLoadError] = useState("");
  const [error, setError] = useState("");
  const [sending, setSending] = useState(false);
  const [form, setForm] = useState({ name: "", image: "", flavor: "", keypair: "", group: "", count: "1", user_data: "" });
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.target.value }));

  useEffect(() => {
    let live = true;
    (async () => {
      const [imgs, flvs, keys, groups] = await Promise.allSettled([
        listImages({ status: "active" }),
        get("/compute/v2.1/flavors/detail"),
        get("/compute/v2.1/os-keypairs"),
        get("/compute/v2.1/os-server-groups"),
      ]);
      if (!live) return;
      const problems = [imgs, flvs].filter((r) => r.status === "rejected").map((r) => r.reason);
      if (problems.some((p) => p.expired)) return;
      if (problems.length) setLoadError(problems.map((p) => p.message).join(" "));
      const images = (imgs.status === "fulfilled" ? imgs.value : []).filter((i) => i.status === "active").sort(byName);
      const flavors = flvs.status === "fulfilled" ? (flvs.value && flvs.value.flavors) || [] : [];
      const keypairs = keys.status === "fulfilled" ? ((keys.value && keys.value.keypairs) || []).map((k) => k.keypair) : [];
      const grps = groups.status === "fulfilled" ? (groups.value && groups.value.server_groups) || [] : [];
      setChoices({ images, flavors, keypairs, groups: grps });
      setForm((f) => ({
        ...f,
        image: f.image || (images[0] ? images[0].id : ""),
        flavor: f.flavor || (flavors[0] ? flavors[0].id : ""),
      }));
    })();
    return () => {
      live = false;
    };
  }, []);

  async function submit(e) {
    e.preventDefault();
    setError("");
    const count = parseInt(form.count, 10);
    if (!form.name.trim()) return setError("Give the server a name.");
    if (!form.image) return setError("Choose an image.");
    if (!form.flavor) return setError("Choose a flavor.");
    if (!Number.isInteger(count) || count < 1) return setError("The count must be a whole number of at least 1.");
    const server = {
      name: form.name.trim(),
      imageRef: form.image,
      flavorRef: form.flavor,
      networks: "auto",
      min_count: count,
      max_count: count,
    };
    if (form.keypair) server.key_name = form.keypair;
    if (form.user_data) server.user_data = base64Utf8(form.user_data);
    const body = { server };
    if (form.group) body["os:scheduler_hints"] = { group: form.group };
    setSending(true);
    try {
      await post("/compute/v2.1/servers", body);
      onLaunched();
    } catch (err) {
      if (!err.expired) setError(err.message);
      setSending(false);
    }
  }

  const c = choices || { images: [], flavors: [], keypairs: [], groups: [] };
  const loading = choices === null;
  return html`<form id="launch-form" onSubmit=${submit} novalidate>
    <div class="form-grid">
      <label class="field">
        <span>Name</span>
        <input name="name" value=${form.name} onInput=${set("name")} required maxlength="255" autocomplete="off" />
      </label>
      <label class="field">
        <span>Image</span>
        <select name="image" value=${form.image} onChange=${set("image")} required>
          ${loading && html`<option value="">Loading…</option>`}
          ${!loading && c.images.length === 0 && html`<option value="">(no active image)</option>`}
          ${c.images.map((i) => html`<option key=${i.id} value=${i.id}>${i.name || i.id}</option>`)}
        </select>
      </label>
      <label class="field">
        <span>Flavor</span>
        <select name="flavor" value=${form.flavor} onChange=${set("flavor")} required>
          ${loading && html`<option value="">Loading…</option>`}
          ${c.flavors.map(
            (f) => html`<option key=${f.id} value=${f.id} title=${`${f.vcpus} vCPU, ${f.ram} MB RAM, ${f.disk} GB disk`}>${f.name}</option>`,
          )}
        </select>
      </label>
      <label class="field">
        <span>Key pair <small>(optional)</small></span>
        <select name="keypair" value=${form.keypair} onChange=${set("keypair")}>
          <option value="">(none)</option>
          ${c.keypairs.map((k) => html`<option key=${k.name} value=${k.name}>${k.name}</option>`)}
        </select>
      </label>
      <label class="field">
        <span>Server group <small>(optional)</small></span>
        <select name="group" value=${form.group} onChange=${set("group")}>
          <option value="">(none)</option>
          ${c.groups.map(
            (g) => html`<option key=${g.id} value=${g.id}>${g.name} (${g.policy || (g.policies || []).join(", ")})</option>`,
          )}
        </select>
      </label>
      <label class="field">
        <span>Count</span>
        <input name="count" type="number" min="1" step="1" value=${form.count} onInput=${set("count")} required />
      </label>
      <label class="field field-wide">
        <span>User data <small>(optional, e.g. a cloud-init script)</small></span>
        <textarea name="user_data" rows="4" value=${form.user_data} onInput=${set("user_data")} spellcheck="false"></textarea>
      </label>
    </div>
    ${loadError && html`<${InlineError} message=${loadError} />`}
    <${InlineError} message=${error} id="launch-error" />
    <div class="dialog-buttons">
      <button type="button" onClick=${onClose}>Cancel</button>
      <button type="submit" id="launch-submit" class="primary" disabled=${sending}>${sending ? "Launching…" : "Launch"}</button>
    </div>
  </form>`;
}
