"""Static files of the web UI: `/ui/` -> the dashboard (`webui/index.html` and its bundle in
`webui/dist/`), `/ui/console.html` -> the console page, `/ui/novnc/` -> noVNC from npm.

Neither noVNC nor the dashboard's libraries are copied into the repository:
`scripts/webui-setup.sh` installs the versions locked in `webui/package-lock.json` into
`webui/node_modules/` and builds the dashboard bundle into `webui/dist/`. The directory can be moved with the
`webui_dir` key of the serve config or `MININOVA_WEBUI_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from mininova.config import ServeConfig

REPO_WEBUI = Path(__file__).resolve().parents[2] / "webui"
NOVNC_SUBDIR = Path("node_modules/@novnc/novnc")
NOVNC_ALLOWED = ("core/", "vendor/", "LICENSE.txt", "AUTHORS", "package.json")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}

# The console page carries the console token in its URL: never leak it in a Referer; only
# the dashboard (same origin) may frame it.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; "
        "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
}

# The dashboard: its Keystone token lives in script (sessionStorage, X-Auth-Token), so no
# inline script, no framing by anyone, no form posts, no connections elsewhere.
DASHBOARD_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}
DASHBOARD_PAGE = "index.html"
DASHBOARD_BUNDLE = Path("dist/app.js")


def webui_dir(config: ServeConfig) -> Path:
    configured = config.extra.get("webui_dir") or os.environ.get("MININOVA_WEBUI_DIR")
    return Path(configured).expanduser().resolve() if configured else REPO_WEBUI


def novnc_dir(config: ServeConfig) -> Path:
    return webui_dir(config) / NOVNC_SUBDIR


def _safe_file(root: Path, rel: str) -> Path | None:
    if not rel or "\x00" in rel:
        return None
    try:
        path = (root / rel).resolve()
        path.relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


def _file_response(path: Path, headers: dict[str, str] | None = None) -> web.FileResponse:
    ctype = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    hdrs = {"Content-Type": ctype, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    hdrs.update(headers or {})
    return web.FileResponse(path, headers=hdrs)


def _not_found(message: str = "Not found.") -> web.Response:
    return web.json_response({"error": {"code": 404, "message": message}}, status=404)


def setup_static(app: web.Application, config: ServeConfig) -> None:
    async def ui_root(request: web.Request) -> web.StreamResponse:
        root = webui_dir(config)
        page = _safe_file(root, DASHBOARD_PAGE)
        if page is None or not (root / DASHBOARD_BUNDLE).is_file():
            return _not_found("The dashboard is not built: run scripts/webui-setup.sh")
        return _file_response(page, DASHBOARD_HEADERS)

    async def novnc(request: web.Request) -> web.StreamResponse:
        rel = request.match_info["path"]
        root = novnc_dir(config)
        if not root.is_dir():
            return _not_found("noVNC is not installed: run scripts/webui-setup.sh")
        if not rel.startswith(NOVNC_ALLOWED):
            return _not_found()
        path = _safe_file(root, rel)
        return _file_response(path) if path else _not_found()

    async def ui_file(request: web.Request) -> web.StreamResponse:
        rel = request.match_info["path"]
        parts = Path(rel).parts
        if (
            not parts
            or parts[0] == "node_modules"
            or any(p.startswith(".") for p in parts)
            or rel in ("package.json", "package-lock.json")
        ):
            return _not_found()
        path = _safe_file(webui_dir(config), rel)
        if path is None:
            return _not_found()
        if rel == DASHBOARD_PAGE:
            return await ui_root(request)
        return _file_response(path, PAGE_HEADERS if path.suffix == ".html" else None)

    async def ui_redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")

    app.router.add_get("/ui", ui_redirect)
    app.router.add_get("/ui/", ui_root)
    app.router.add_get("/ui/novnc/{path:.*}", novnc)
    app.router.add_get("/ui/{path:.*}", ui_file)
