// #/login: password login (optionally scoped to a project by name).
import { html, useEffect, useRef, useState } from "../html.js";
import { login } from "../auth.js";
import { loginNotice } from "../session.js";
import { useStore } from "../store.js";

export function LoginPage() {
  const notice = useStore(loginNotice);
  const [form, setForm] = useState({ username: "", password: "", project: "" });
  const [error, setError] = useState("");
  const [sending, setSending] = useState(false);
  const first = useRef(null);
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.target.value }));

  useEffect(() => {
    if (first.current) first.current.focus();
  }, []);

  async function submit(e) {
    e.preventDefault();
    if (!form.username.trim() || !form.password) {
      setError("Enter your username and password.");
      loginNotice.set("");
      return;
    }
    setSending(true);
    setError("");
    try {
      await login(form.username.trim(), form.password, form.project.trim());
      loginNotice.set(""); // the router goes back to the page the user was on
    } catch (err) {
      loginNotice.set("");
      setError(err.message);
      setSending(false);
    }
  }

  const message = error || notice;
  return html`<main class="login-wrap" id="main">
    <form id="login" class="card login-card" onSubmit=${submit} novalidate aria-labelledby="login-title">
      <h1 id="login-title"><span class="brand">mininova</span> Log in</h1>
      <div id="login-error" role="alert" class=${message ? "alert alert-error" : "alert-slot"}>${message}</div>
      <label class="field">
        <span>Username</span>
        <input name="username" ref=${first} value=${form.username} onInput=${set("username")} autocomplete="username" required />
      </label>
      <label class="field">
        <span>Password</span>
        <input name="password" type="password" value=${form.password} onInput=${set("password")} autocomplete="current-password" required />
      </label>
      <label class="field">
        <span>Project <small>(optional: blank for your default project)</small></span>
        <input name="project" value=${form.project} onInput=${set("project")} autocomplete="off" />
      </label>
      <button type="submit" class="primary wide" disabled=${sending}>${sending ? "Logging in…" : "Log in"}</button>
    </form>
  </main>`;
}
