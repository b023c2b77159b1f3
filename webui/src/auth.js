// Keystone token operations: password login, token-method rescope, revoke, logout.
import { api, get } from "./api.js";
import { clearSession, currentToken, noteLogout, setSession } from "./session.js";
import { createStore } from "./store.js";

/** Bumped when projects the user may scope to were made or deleted (the project menu re-reads). */
export const projectsChanged = createStore(0);

const DOMAIN = { id: "default" };

function tokenFrom(resp) {
  const token = resp.headers.get("X-Subject-Token");
  const body = resp.data && resp.data.token;
  if (!token || !body) throw new Error("Keystone answered without a token.");
  return { token, body };
}

/** POST /identity/v3/auth/tokens (password); project by name in the default domain, or none. */
export async function login(username, password, projectName) {
  const auth = {
    identity: {
      methods: ["password"],
      password: { user: { name: username, domain: DOMAIN, password } },
    },
  };
  if (projectName) auth.scope = { project: { name: projectName, domain: DOMAIN } };
  const resp = await api("POST", "/identity/v3/auth/tokens", { body: { auth }, auth: false, raw: true });
  const { token, body } = tokenFrom(resp);
  setSession(token, body);
  return body;
}

/**
 * A new token for `projectId` from `token` (token method). A 401 here ends the session only
 * when `token` is the session's own (expireOn401 tells otherwise).
 */
export async function rescope(token, projectId, { expireOn401 } = {}) {
  const body = {
    auth: {
      identity: { methods: ["token"], token: { id: token } },
      scope: { project: { id: projectId } },
    },
  };
  const resp = await api("POST", "/identity/v3/auth/tokens", {
    body,
    token,
    raw: true,
    expireOn401: expireOn401 !== undefined ? expireOn401 : token === currentToken(),
  });
  return tokenFrom(resp);
}

/** DELETE /identity/v3/auth/tokens: X-Auth-Token and X-Subject-Token both the token. */
export async function revoke(token) {
  await api("DELETE", "/identity/v3/auth/tokens", {
    token,
    headers: { "X-Subject-Token": token },
    expireOn401: false,
  });
}

/** The projects the user may scope to (GET /identity/v3/auth/projects). */
export async function myProjects() {
  const data = await get("/identity/v3/auth/projects");
  return ((data && data.projects) || []).filter((p) => p.enabled !== false);
}

/** Rescope the session to another project, then revoke the old token. */
export async function switchProject(projectId) {
  const old = currentToken();
  const { token, body } = await rescope(old, projectId);
  setSession(token, body);
  try {
    await revoke(old);
  } catch (_) {
    /* the old token dies on its own when it expires */
  }
  return body;
}

/** Revoke the token, forget everything of this tab's session. */
export async function logout() {
  const token = currentToken();
  if (token) {
    try {
      await revoke(token);
    } catch (_) {
      /* already invalid: nothing to revoke */
    }
  }
  noteLogout();
  clearSession({ all: true });
}
