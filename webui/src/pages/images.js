// #/images: Glance images, deleting the project's own, uploading with progress.
import { html, useRef, useState } from "../html.js";
import { del, listImages, post, uploadFile } from "../api.js";
import { dismissKey, notice, showError } from "../alerts.js";
import { usePoll } from "../poll.js";
import { project } from "../session.js";
import { byName, formatBytes } from "../util.js";
import { confirmAction } from "../components/confirm.js";
import { ui } from "../ui.js";

const POLL_MS = 5000;

export function ImagesPage() {
  const [images, setImages] = useState(null);
  const [busy, setBusy] = useState({});
  const me = (project() || {}).id;

  const refresh = usePoll(async () => {
    try {
      setImages((await listImages()).sort(byName));
      dismissKey("images-poll");
    } catch (err) {
      showError(err, { key: "images-poll", prefix: "Cannot list the images" });
    }
  }, POLL_MS);

  async function remove(image) {
    const ok = await confirmAction({
      title: "Delete image?",
      message: `Delete image "${image.name || image.id}"? Servers cannot be launched from it any more.`,
    });
    if (!ok) return;
    setBusy((b) => ({ ...b, [image.id]: true }));
    try {
      await del(`/image/v2/images/${image.id}`);
    } catch (err) {
      showError(err, { prefix: `Delete image ${image.name || image.id}` });
    }
    setBusy((b) => {
      const next = { ...b };
      delete next[image.id];
      return next;
    });
    refresh();
  }

  return html`<div class="page" id="images-page">
    <div class="page-head"><h1>Images</h1></div>
    <${UploadForm} onUploaded=${refresh} />
    ${images === null
      ? html`<p class="muted">Loading images…</p>`
      : html`<div class="table-wrap">
          <table id="images" class="data collapse">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Size</th>
                <th scope="col">Format</th>
                <th scope="col">Visibility</th>
                <th scope="col">Owner</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              ${images.length === 0 && html`<tr class="empty"><td colspan="7">No images yet: upload one.</td></tr>`}
              ${images.map(
                (img) => html`<tr key=${img.id} data-image-id=${img.id} data-name=${img.name || ""} data-status=${img.status}>
                  <th scope="row" class="name">${img.name || html`<span class="muted">${img.id}</span>`}</th>
                  <td class="status" data-label="Status"><span class=${`badge status-${img.status}`}>${img.status}</span></td>
                  <td class="size" data-label="Size" data-bytes=${img.size ?? ""}>${formatBytes(img.size)}</td>
                  <td class="format" data-label="Format">${img.disk_format || "—"}</td>
                  <td class="visibility" data-label="Visibility">${img.visibility}</td>
                  <td class="owner" data-label="Owner" title=${img.owner || ""}>${img.owner === me ? "this project" : img.owner ? img.owner.slice(0, 8) + "…" : "—"}</td>
                  <td class="row-actions" data-label="Actions">
                    ${img.owner === me &&
                    html`<button type="button" class="small danger" data-action="delete" disabled=${!!busy[img.id]}
                      title=${`Delete ${img.name || img.id}`} onClick=${() => remove(img)}>Delete</button>`}
                  </td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>`}
  </div>`;
}

function UploadForm({ onUploaded }) {
  const fileRef = useRef(null);
  const [name, setName] = useState("");
  const [format, setFormat] = useState("qcow2");
  const [progress, setProgress] = useState(null);
  const [uploading, setUploading] = useState(false);

  function record(value) {
    const v = Math.max(0, Math.min(100, Math.round(value)));
    const list = ui.uploadProgress;
    if (list.length && list[list.length - 1] === v) return;
    list.push(v);
    setProgress(v);
  }

  async function submit(e) {
    e.preventDefault();
    const file = fileRef.current && fileRef.current.files[0];
    if (!file) {
      showError(new Error("Choose a file to upload."));
      return;
    }
    const imageName = name.trim() || file.name.replace(/\.[^.]+$/, "") || file.name;
    ui.uploadProgress.length = 0;
    setUploading(true);
    setProgress(null);
    try {
      const image = await post("/image/v2/images", {
        name: imageName,
        disk_format: format,
        container_format: "bare",
      });
      record(0);
      await uploadFile(`/image/v2/images/${image.id}/file`, file, { onProgress: record });
      record(100);
      notice(`Image "${imageName}" uploaded.`);
      setName("");
      if (fileRef.current) fileRef.current.value = "";
    } catch (err) {
      showError(err, { prefix: `Upload of ${imageName}` });
    }
    setUploading(false);
    onUploaded();
  }

  return html`<form id="image-upload" class="card inline-form" onSubmit=${submit} novalidate>
    <h2>Upload an image</h2>
    <div class="form-row">
      <label class="field">
        <span>Name</span>
        <input name="name" value=${name} onInput=${(e) => setName(e.target.value)} placeholder="(the file's name)" maxlength="255" />
      </label>
      <label class="field">
        <span>File</span>
        <input name="file" type="file" ref=${fileRef} required />
      </label>
      <label class="field">
        <span>Disk format</span>
        <select name="disk_format" value=${format} onChange=${(e) => setFormat(e.target.value)}>
          <option value="qcow2">qcow2</option>
          <option value="raw">raw</option>
          <option value="iso">iso</option>
        </select>
      </label>
      <button type="submit" id="upload-submit" class="primary" disabled=${uploading}>${uploading ? "Uploading…" : "Upload"}</button>
    </div>
    <div class="progress-row" hidden=${progress === null}>
      <progress id="upload-progress" max="100" value=${String(progress ?? 0)} aria-label="Upload progress"></progress>
      <span id="upload-percent" role="status">${progress === null ? "" : `${progress}%`}</span>
    </div>
  </form>`;
}
