#!/usr/bin/env bash
# The long schemathesis run: `mininova serve --local-agent=fake` on a temp data dir, every
# operation of /openapi.json with an admin and a member token (bench/fuzz.py), then the log's
# tracebacks, SQLite's integrity check and `mininova doctor`; then the hypothesis tests of the
# agent protocol and the console handshake with 10x CI's examples (FUZZ_PROTOCOL_SCALE).
#
#   bench/fuzz.sh                    # 35 examples per generation mode and operation (~4 min
#                                    # on 2 cores, 24,000 requests)
#   FUZZ_EXAMPLES=200 bench/fuzz.sh  # an overnight run
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
EXAMPLES=${FUZZ_EXAMPLES:-35}
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
DATA=$(mktemp -d /tmp/mininova-fuzz.XXXXXX)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
LOG=$DATA/serve.log

"$PY" -m mininova.cli serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --local-agent=fake \
  >"$LOG" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -fs "$URL/healthcheck" >/dev/null 2>&1 && [ -s "$DATA/admin-credentials" ] && break
  kill -0 $SERVE 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.2
done
PASSWORD=$(sed -n 's/^password=//p' "$DATA/admin-credentials")

echo "== fuzz: $URL, $EXAMPLES examples per mode and operation, admin and member tokens"
set +e
"$PY" -m bench.fuzz --url "$URL" --admin "admin:$PASSWORD:admin" --examples "$EXAMPLES"
FUZZ=$?
set -e
STILL_UP=$(curl -fs -o /dev/null -w '%{http_code}' "$URL/healthcheck" || echo down)
kill $SERVE; wait $SERVE 2>/dev/null || true
trap - EXIT

TRACEBACKS=$(grep -c '^Traceback' "$LOG" || true)
echo "serve still answering at the end: $STILL_UP"
echo "tracebacks in the log: $TRACEBACKS"
grep -B2 -A12 '^Traceback' "$LOG" | head -60 || true
INTEGRITY=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$DATA/mininova.sqlite")
echo "integrity check: $INTEGRITY"
DOCTOR=0
if "$PY" -m mininova.cli doctor --help >/dev/null 2>&1; then
  set +e
  "$PY" -m mininova.cli doctor --data-dir "$DATA"
  DOCTOR=$?
  set -e
  echo "doctor exit status: $DOCTOR"
else
  echo "doctor: not available"
fi
echo "data dir (kept): $DATA"

# The agent protocol and console handshake property tests, MININOVA_FUZZ_SCALE times CI's dose.
SCALE=${FUZZ_PROTOCOL_SCALE:-10}
echo "== hypothesis: agent protocol and console handshake, $SCALE x the CI examples"
set +e
(cd "$REPO" && MININOVA_FUZZ_SCALE=$SCALE "$PY" -m pytest -p no:cacheprovider -q \
  tests/hardening/test_protocol_fuzz.py tests/hardening/test_console_handshake_fuzz.py)
PROPERTIES=$?
set -e
echo "property tests exit status: $PROPERTIES"
[ "$FUZZ" = 0 ] && [ "$TRACEBACKS" = 0 ] && [ "$INTEGRITY" = ok ] && [ "$DOCTOR" = 0 ] && [ "$PROPERTIES" = 0 ]
