#!/usr/bin/env bash
# setup.sh: make a fresh machine (Node.js 20 + npm only) ready to build and
# test Flotilla. Idempotent: a second run only re-checks the install.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2

if ! command -v node >/dev/null 2>&1; then
  echo "setup: Node.js 20 or newer is required (node not found)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found $(node --version))" >&2
  exit 1
fi

# pnpm: corepack fails on some machines (signature errors), so install the
# pinned release with npm; fall back to a project-local prefix when the
# global prefix is not writable.
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  if [ -x .tools/bin/pnpm ] && [ "$(.tools/bin/pnpm --version)" = "$PNPM_VERSION" ]; then
    :
  elif ! npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1; then
    echo "setup: global npm prefix not writable; installing pnpm into .tools/" >&2
    npm install --prefix .tools "pnpm@$PNPM_VERSION" >/dev/null
  fi
fi
if [ -x .tools/bin/pnpm ] && [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  export PATH="$PWD/.tools/bin:$PATH"
fi

# better-sqlite3 12.x compiles from source where its prebuilt binary cannot be
# downloaded; node-gyp finds Node's headers only through this variable.
if [ -d /usr/include/node ]; then
  export npm_config_nodedir=/usr
fi

# Debian packages some tests use, installed only as root with apt-get, with
# one apt-get update for all; a failed install never fails the setup (those
# tests skip with the reason printed):
#   redis-tools (redis-cli, redis-benchmark) for the Redis front's tests
#     (apps/node/test/redis-cli.test.ts) and pnpm bench:redis;
#   chromium for the dashboard's headless-browser test
#     (apps/node/test/dashboard.test.ts; about 90 s with the update, once).
apt_pkgs=()
command -v redis-cli >/dev/null 2>&1 || apt_pkgs+=(redis-tools)
[ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
if [ "${#apt_pkgs[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing ${apt_pkgs[*]} for the Redis front's and the dashboard's tests" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_pkgs[@]}"; } >/dev/null 2>&1; then
    echo "setup: could not install ${apt_pkgs[*]}; the tests needing them will skip" >&2
  fi
fi

pnpm install --frozen-lockfile
