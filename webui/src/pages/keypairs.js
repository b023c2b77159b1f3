// #/keypairs: list, create (private key offered once as <name>.pem), import, delete.
import { html, useEffect, useRef, useState } from "../html.js";
import { del, get, post } from "../api.js";
import { dismissKey, notice, showError } from "../alerts.js";
import { usePoll } from "../poll.js";
import { textUrl, triggerDownload } from "../util.js";
import { confirmAction } from "../components/confirm.js";

// Nova ≥ 2.92 refuses to generate keys: creation without public_key asks for 2.1.
const GENERATE_MICROVERSION = "2.1";

export function KeypairsPage() {
  const [keypairs, setKeypairs] = useState(null);
  const [created, setCreated] = useState(null); // {name, url}
  const urlRef = useRef(null);

  useEffect(
    () => () => {
      if (urlRef.current) URL.revokeObjectURL(urlRef.current);
    },
    [],
  );

  const refresh = usePoll(async () => {
    try {
      const data = await get("/compute/v2.1/os-keypairs");
      setKeypairs(((data && data.keypairs) || []).map((k) => k.keypair).sort((a, b) => a.name.localeCompare(b.name)));
      dismissKey("keypairs-poll");
    } catch (err) {
      showError(err, { key: "keypairs-poll", prefix: "Cannot list the key pairs" });
    }
  }, 10000);

  function offerPrivateKey(name, privateKey) {
    if (urlRef.current) URL.revokeObjectURL(urlRef.current);
    const url = textUrl(privateKey, "application/x-pem-file");
    urlRef.current = url;
    setCreated({ name, url });
    triggerDownload(url, `${name}.pem`);
  }

  async function create(name) {
    const data = await post("/compute/v2.1/os-keypairs", { keypair: { name } }, { microversion: GENERATE_MICROVERSION });
    const kp = (data && data.keypair) || {};
    if (kp.private_key) offerPrivateKey(kp.name || name, kp.private_key);
    else notice(`Key pair "${name}" created.`);
    refresh();
  }

  async function importKey(name, publicKey) {
    await post("/compute/v2.1/os-keypairs", { keypair: { name, public_key: publicKey } });
    notice(`Public key "${name}" imported.`);
    refresh();
  }

  async function remove(kp) {
    const ok = await confirmAction({
      title: "Delete key pair?",
      message: `Delete key pair "${kp.name}"? Servers that already have it keep it.`,
    });
    if (!ok) return;
    try {
      await del(`/compute/v2.1/os-keypairs/${encodeURIComponent(kp.name)}`);
    } catch (err) {
      showError(err, { prefix: `Delete key pair ${kp.name}` });
    }
    refresh();
  }

  return html`<div class="page" id="keypairs-page">
    <div class="page-head"><h1>Key pairs</h1></div>
    <div class="cards-2">
      <${NameForm} id="keypair-create" title="Create a key pair" button="Create" onSubmit=${create}>
        <p class="muted">mininova generates the key; you download the private key once.</p>
      <//>
      <${ImportForm} onSubmit=${importKey} />
    </div>
    ${created &&
    html`<div class="card warning" id="private-key-box" role="status">
      <p>
        <strong>Key pair "${created.name}" created.</strong>${" "}
        This private key is offered only once: save <code>${created.name}.pem</code> now${" "}
        (mininova does not keep it), then run <code>chmod 600 ${created.name}.pem</code>.
      </p>
      <a id="private-key-download" class="button" href=${created.url} download=${`${created.name}.pem`}>
        Download ${created.name}.pem
      </a>
    </div>`}
    ${keypairs === null
      ? html`<p class="muted">Loading key pairs…</p>`
      : html`<div class="table-wrap">
          <table id="keypairs" class="data collapse">
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Fingerprint</th><th scope="col">Actions</th></tr>
            </thead>
            <tbody>
              ${keypairs.length === 0 && html`<tr class="empty"><td colspan="4">No key pairs yet.</td></tr>`}
              ${keypairs.map(
                (kp) => html`<tr key=${kp.name} data-keypair=${kp.name}>
                  <th scope="row" class="name">${kp.name}</th>
                  <td class="type" data-label="Type">${kp.type || "ssh"}</td>
                  <td class="fingerprint" data-label="Fingerprint"><code>${kp.fingerprint}</code></td>
                  <td class="row-actions" data-label="Actions">
                    <button type="button" class="small danger" data-action="delete" title=${`Delete ${kp.name}`} onClick=${() => remove(kp)}>Delete</button>
                  </td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>`}
  </div>`;
}

function NameForm({ id, title, button, onSubmit, children }) {
  const [name, setName] = useState("");
  const [sending, setSending] = useState(false);
  async function submit(e) {
    e.preventDefault();
    if (!name.trim()) return showError(new Error("Give the key pair a name."));
    setSending(true);
    try {
      await onSubmit(name.trim());
      setName("");
    } catch (err) {
      showError(err, { prefix: `${button} key pair ${name.trim()}` });
    }
    setSending(false);
  }
  return html`<form id=${id} class="card" onSubmit=${submit} novalidate>
    <h2>${title}</h2>
    ${children}
    <label class="field">
      <span>Name</span>
      <input name="name" value=${name} onInput=${(e) => setName(e.target.value)} required maxlength="255" autocomplete="off" />
    </label>
    <button type="submit" class="primary" disabled=${sending}>${button}</button>
  </form>`;
}

function ImportForm({ onSubmit }) {
  const [name, setName] = useState("");
  const [key, setKey] = useState("");
  const [sending, setSending] = useState(false);
  async function submit(e) {
    e.preventDefault();
    if (!name.trim()) return showError(new Error("Give the key pair a name."));
    if (!key.trim()) return showError(new Error("Paste a public key (ssh-ed25519 …, ssh-rsa …)."));
    setSending(true);
    try {
      await onSubmit(name.trim(), key.trim());
      setName("");
      setKey("");
    } catch (err) {
      showError(err, { prefix: `Import key pair ${name.trim()}` });
    }
    setSending(false);
  }
  return html`<form id="keypair-import" class="card" onSubmit=${submit} novalidate>
    <h2>Import a public key</h2>
    <label class="field">
      <span>Name</span>
      <input name="name" value=${name} onInput=${(e) => setName(e.target.value)} required maxlength="255" autocomplete="off" />
    </label>
    <label class="field">
      <span>Public key</span>
      <textarea name="public_key" rows="3" value=${key} onInput=${(e) => setKey(e.target.value)} required spellcheck="false"
        placeholder="ssh-ed25519 AAAA… you@laptop"></textarea>
    </label>
    <button type="submit" class="primary" disabled=${sending}>Import</button>
  </form>`;
}
