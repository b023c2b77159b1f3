// The one client of mininova's public REST APIs (same origin, relative URLs).
// The Keystone token travels only in the X-Auth-Token header.
import { currentToken, expireSession } from "./session.js";

export const COMPUTE_MICROVERSION = "2.100";
/** 2.88 dropped vcpus/memory/disk from the hypervisor views: the hosts page asks for 2.87. */
export const HYPERVISOR_MICROVERSION = "2.87";
const TIMEOUT_MS = 60000;

export class ApiError extends Error {
  constructor(status, message, body = null, { expired = false } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.expired = expired;
  }
}

function clean(text) {
  return String(text)
    .replace(/<[^>]*>/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * The message of an OpenStack error body:
 *   Nova      {"<kind>": {"message": M, "code": C}}
 *   Keystone  {"error": {"message": M, "code": C, "title": T}}
 *   Glance    {"message": M} or {"error": ...} or plain text / HTML
 */
export function errorMessage(status, data, text = "", statusText = "") {
  if (data && typeof data === "object") {
    if (data.error && typeof data.error === "object" && data.error.message) {
      return String(data.error.message);
    }
    if (typeof data.error === "string" && data.error) return data.error;
    if (typeof data.message === "string" && data.message) return data.message;
    if (typeof data.detail === "string" && data.detail) return data.detail;
    for (const value of Object.values(data)) {
      if (value && typeof value === "object" && typeof value.message === "string") {
        return value.message;
      }
    }
  }
  if (typeof data === "string" && data.trim()) text = data;
  if (text && text.trim()) {
    // Glance's text bodies start with the status line: "403 Forbidden\n\nThe message\n\n".
    const chunks = String(text)
      .replace(/<[^>]*>/g, "\n")
      .split(/\n\s*\n/)
      .map(clean)
      .filter(Boolean);
    if (chunks.length > 1 && /^\d{3}\b/.test(chunks[0])) chunks.shift();
    const body = chunks.join(" ");
    if (body) return body.length > 500 ? body.slice(0, 500) + "…" : body;
  }
  return `The request failed (HTTP ${status}${statusText ? " " + statusText : ""}).`;
}

function buildHeaders(path, opts, token) {
  const headers = { Accept: "application/json" };
  if (token) headers["X-Auth-Token"] = token;
  if (path.startsWith("/compute/")) {
    headers["OpenStack-API-Version"] = `compute ${opts.microversion || COMPUTE_MICROVERSION}`;
  }
  return Object.assign(headers, opts.headers || {});
}

function parseBody(text, contentType) {
  if (!text) return null;
  if ((contentType || "").includes("json") || /^[\s]*[{[]/.test(text)) {
    try {
      return JSON.parse(text);
    } catch (_) {
      /* not JSON after all */
    }
  }
  return text;
}

/** Whether a 401 of this request means the session is over. */
function expires(opts) {
  if (opts.expireOn401 !== undefined) return opts.expireOn401;
  return opts.token === undefined && opts.auth !== false;
}

/**
 * api(method, path, {body, token, auth, microversion, headers, raw, expireOn401, signal})
 * → the parsed JSON body (or text, or null); with raw: {status, data, headers}.
 * Throws ApiError with the API's message. A 401 with the session's token ends the session
 * (unless expireOn401: false) and throws an ApiError whose `expired` is true.
 */
export async function api(method, path, opts = {}) {
  const token = opts.auth === false ? null : opts.token !== undefined ? opts.token : currentToken();
  const headers = buildHeaders(path, opts, token);
  let body;
  if (opts.body !== undefined) {
    if (opts.body instanceof Blob || typeof opts.body === "string") {
      body = opts.body;
    } else {
      body = JSON.stringify(opts.body);
      headers["Content-Type"] = "application/json";
    }
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.timeout || TIMEOUT_MS);
  if (opts.signal) opts.signal.addEventListener("abort", () => controller.abort());
  let resp;
  let text;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body,
      cache: "no-store",
      credentials: "omit",
      signal: controller.signal,
    });
    text = await resp.text();
  } catch (err) {
    const why = controller.signal.aborted ? "the request timed out" : String(err.message || err);
    throw new ApiError(0, `Cannot reach mininova (${why}).`);
  } finally {
    clearTimeout(timer);
  }
  const data = parseBody(text, resp.headers.get("Content-Type"));
  if (!resp.ok) {
    const message = errorMessage(resp.status, data, text, resp.statusText);
    if (resp.status === 401 && token && expires(opts)) {
      expireSession(token);
      throw new ApiError(401, message, data, { expired: true });
    }
    throw new ApiError(resp.status, message, data);
  }
  return opts.raw ? { status: resp.status, data, headers: resp.headers } : data;
}

export const get = (path, opts) => api("GET", path, opts);
export const post = (path, body, opts = {}) => api("POST", path, { ...opts, body });
export const put = (path, body, opts = {}) => api("PUT", path, { ...opts, body });
export const del = (path, opts) => api("DELETE", path, opts);

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** All of Glance's images, following its `next` links (a few pages at most). */
export async function listImages(params = {}) {
  let path = `/image/v2/images${query({ limit: 200, ...params })}`;
  const images = [];
  for (let page = 0; page < 20 && path; page += 1) {
    const data = await get(path);
    images.push(...((data && data.images) || []));
    const next = data && data.next;
    path = next ? (next.startsWith("/image/") ? next : `/image${next}`) : null;
  }
  return images;
}

/**
 * PUT a file with XMLHttpRequest so that upload progress can be reported:
 * onProgress(percent 0..100). Resolves when the API answered 2xx.
 */
export function uploadFile(path, file, { onProgress, contentType = "application/octet-stream" } = {}) {
  const token = currentToken();
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", path);
    if (token) xhr.setRequestHeader("X-Auth-Token", token);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0 && onProgress) {
        onProgress(Math.min(100, Math.floor((e.loaded / e.total) * 100)));
      }
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(null);
        return;
      }
      const text = xhr.responseText || "";
      const data = parseBody(text, xhr.getResponseHeader("Content-Type"));
      const message = errorMessage(xhr.status, data, text, xhr.statusText);
      if (xhr.status === 401 && token) {
        expireSession(token);
        reject(new ApiError(401, message, data, { expired: true }));
        return;
      }
      reject(new ApiError(xhr.status, message, data));
    };
    xhr.onerror = () => reject(new ApiError(0, "The upload failed: cannot reach mininova."));
    xhr.onabort = () => reject(new ApiError(0, "The upload was cancelled."));
    xhr.send(file);
  });
}
