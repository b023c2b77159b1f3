// Small helpers: formatting, encoding, downloads, random passwords.

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || bytes === "") return "—";
  const n = Number(bytes);
  if (!Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${i === 0 ? value : value.toFixed(value >= 10 ? 0 : 1)} ${units[i]}`;
}

/** UTF-8 text → base64 (Nova's user_data). */
export function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** The IP addresses of a server, "10.0.0.5, 10.0.0.6". */
export function serverIps(server) {
  const out = [];
  for (const list of Object.values(server.addresses || {})) {
    for (const a of list || []) if (a && a.addr) out.push(a.addr);
  }
  return out.join(", ");
}

export function flavorName(server, flavorsById = {}) {
  const f = server.flavor || {};
  if (f.original_name) return f.original_name;
  if (f.id && flavorsById[f.id]) return flavorsById[f.id].name;
  return f.id || "—";
}

export function imageName(server, imagesById = {}) {
  const img = server.image;
  if (!img || !img.id) return "(boot volume)";
  const known = imagesById[img.id];
  return known ? known.name || img.id : img.id;
}

/** An object URL for text; the caller revokes it. */
export function textUrl(text, type = "text/plain") {
  return URL.createObjectURL(new Blob([text], { type }));
}

/** Offer a download of an object URL (an a[download] clicked once, then removed). */
export function triggerDownload(url, filename) {
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// Letters and digits, less the ones a printed sheet makes ambiguous (0/O/o, 1/l/I).
const ALPHANUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/** A random password of letters and digits (crypto.getRandomValues, no modulo bias). */
export function randomPassword(length = 14) {
  const limit = 256 - (256 % ALPHANUM.length);
  let out = "";
  while (out.length < length) {
    const bytes = crypto.getRandomValues(new Uint8Array(length * 2));
    for (const b of bytes) {
      if (b < limit && out.length < length) out += ALPHANUM[b % ALPHANUM.length];
    }
  }
  return out;
}

/** Run fn over items with at most `limit` at a time; resolves when all settled. */
export async function eachLimited(items, limit, fn) {
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function byName(a, b) {
  return String(a.name || "").localeCompare(String(b.name || ""));
}
