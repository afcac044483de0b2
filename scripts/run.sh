#!/usr/bin/env bash
# run.sh: the two entry points the README promises.
#   bash scripts/run.sh demo   set up, then run the local-cluster demo
#   bash scripts/run.sh test   set up, then typecheck, lint and run every test
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}
shift || true
bash scripts/setup.sh
[ -x .tools/bin/pnpm ] && export PATH="$PWD/.tools/bin:$PATH"
case "$cmd" in
  demo) exec pnpm demo "$@" ;;
  test) pnpm typecheck && pnpm lint && exec pnpm test "$@" ;;
  *) echo "usage: bash scripts/run.sh demo|test" >&2; exit 2 ;;
esac
