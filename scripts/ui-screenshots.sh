#!/usr/bin/env bash
# Retake the dashboard pictures in docs/screenshots/ with the dashboard tests' own tooling:
# the Playwright tests in tests/ui save the views they name when MININOVA_UI_SCREENSHOTS is set.
#
#   scripts/ui-screenshots.sh        # needs what ./dev test needs (libvirt, Chromium, the build)
set -euo pipefail
cd "$(dirname "$0")/.."
MININOVA_UI_SCREENSHOTS="$(pwd)/docs/screenshots" MININOVA_TEST_DATABASE=sqlite \
    .venv/bin/python -m pytest -p no:cacheprovider -q tests/ui "$@"
ls -l docs/screenshots
