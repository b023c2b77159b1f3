// The Keystone session of this browser tab: the token (sessionStorage only: never a URL, a
// cookie or localStorage) and the token body (user, project, roles, catalog, expires_at).
import { createStore } from "./store.js";

const TOKEN_KEY = "mininova.token";
const BODY_KEY = "mininova.tokenBody";
const RETURN_KEY = "mininova.returnTo";

export const EXPIRED_MESSAGE = "Your session has expired. Please log in again.";

function load() {
  try {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const body = JSON.parse(sessionStorage.getItem(BODY_KEY) || "null");
    if (token && body && body.user) return { token, body };
  } catch (_) {
    /* unreadable storage: start logged out */
  }
  return null;
}

/** {token, body} or null. */
export const session = createStore(load());

/** A message for the login page (session expired), shown once in #login-error. */
export const loginNotice = createStore("");

export function currentToken() {
  const s = session.get();
  return s ? s.token : null;
}

export function setSession(token, body) {
  loggedOut = false;
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(BODY_KEY, JSON.stringify(body));
  session.set({ token, body });
}

export function clearSession({ all = false } = {}) {
  if (all) {
    sessionStorage.clear();
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(BODY_KEY);
  }
  session.set(null);
}

export function isAdmin(s = session.get()) {
  return !!(s && (s.body.roles || []).some((r) => r && r.name === "admin"));
}

export function tokenExpired(s = session.get()) {
  if (!s || !s.body.expires_at) return false;
  const at = Date.parse(s.body.expires_at);
  return Number.isFinite(at) && at <= Date.now();
}

export function userName(s = session.get()) {
  return (s && s.body.user && s.body.user.name) || "";
}

export function project(s = session.get()) {
  return (s && s.body.project) || null;
}

/** The region of the token's catalog (the compute endpoint's, else any), else RegionOne. */
export function regionName(s = session.get()) {
  const catalog = (s && s.body.catalog) || [];
  const order = [...catalog].sort((a, b) => (b.type === "compute") - (a.type === "compute"));
  for (const service of order) {
    for (const ep of service.endpoints || []) {
      const region = ep.region_id || ep.region;
      if (region) return region;
    }
  }
  return "RegionOne";
}

let loggedOut = false;

/** The user logged out: the next login starts on the servers page, not where they were. */
export function noteLogout() {
  loggedOut = true;
}

export function consumeLogout() {
  const was = loggedOut;
  loggedOut = false;
  return was;
}

/** Remember where to come back to after the next login (a hash route, not a secret). */
export function rememberReturn(hash) {
  if (hash && hash.startsWith("#/") && !hash.startsWith("#/login")) {
    sessionStorage.setItem(RETURN_KEY, hash);
  }
}

export function takeReturn() {
  const hash = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  return hash && hash.startsWith("#/") && !hash.startsWith("#/login") ? hash : null;
}

/**
 * A 401 with the session's token: the session is over. Forget the token, remember the page,
 * and send the user to the login page with the notice.
 */
export function expireSession(token = currentToken()) {
  if (!session.get() || (token && token !== currentToken())) return;
  rememberReturn(window.location.hash);
  clearSession();
  loginNotice.set(EXPIRED_MESSAGE);
  if (window.location.hash !== "#/login") window.location.hash = "#/login";
}
