#!/usr/bin/env bash
# Install the web console's JavaScript dependencies (noVNC, pinned in webui/package.json and
# webui/package-lock.json) into webui/node_modules. noVNC is never copied into the repository;
# `mininova serve` serves it from there under /ui/novnc/.
#
#   scripts/webui-setup.sh          # npm ci (exactly the locked versions)
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
