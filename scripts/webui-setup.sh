#!/usr/bin/env bash
# Install the web UI's JavaScript dependencies (pinned in webui/package.json and
# webui/package-lock.json: noVNC for the console page; Preact, htm and esbuild for the
# dashboard) into webui/node_modules, then build the dashboard bundle webui/dist/app.js.
# Neither node_modules/ nor dist/ is committed; `mininova serve` serves noVNC from
# node_modules under /ui/novnc/ and the dashboard (webui/index.html + dist/) under /ui/.
#
#   scripts/webui-setup.sh          # npm ci (exactly the locked versions) + npm run build
#
# Needs node + npm (scripts/host-setup.sh --browser installs them).
set -euo pipefail

cd "$(dirname "$0")/../webui"
if ! command -v npm >/dev/null 2>&1; then
    echo "webui-setup: npm not found: run scripts/host-setup.sh --browser" >&2
    exit 1
fi
if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
else
    npm install --no-audit --no-fund
fi
test -f node_modules/@novnc/novnc/core/rfb.js || {
    echo "webui-setup: noVNC did not install (node_modules/@novnc/novnc/core/rfb.js missing)" >&2
    exit 1
}
echo "webui-setup: noVNC $(node -p 'require("./node_modules/@novnc/novnc/package.json").version') installed in webui/node_modules"

npm run build --silent
test -s dist/app.js || {
    echo "webui-setup: the dashboard did not build (webui/dist/app.js missing)" >&2
    exit 1
}
echo "webui-setup: dashboard built: webui/dist/app.js ($(wc -c <dist/app.js) bytes)"
