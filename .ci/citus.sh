#!/usr/bin/env bash
# Citus target for CI: installs Citus with the kit (../shared/citus: install.sh) and starts its
# 3-node cluster (cluster.sh start, idempotent). On success the LAST stdout line is the
# coordinator URL. Where the kit cannot install or start, it prints ONE visible line with the
# kit's reason and exits 0 without a URL: the Citus run is then reported as not run, and CI goes on.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kit=""
for d in "${CITUS_KIT_DIR:-}" "$root/../shared/citus" "$root/../../shared/citus" /work/shared/citus; do
  if [ -n "$d" ] && [ -x "$d/cluster.sh" ]; then kit="$d"; break; fi
done
if [ -z "$kit" ]; then
  echo "CITUS NOT AVAILABLE: no Citus kit found (set CITUS_KIT_DIR to the folder holding install.sh and cluster.sh); the Citus suite does not run"
  exit 0
fi
log="$(mktemp)"
if [ "$(id -u)" -ne 0 ]; then
  echo "CITUS NOT AVAILABLE: the kit needs root (install.sh, cluster.sh start) and this is uid $(id -u); the Citus suite does not run"
  exit 0
fi
if ! "$kit/install.sh" >"$log" 2>&1; then
  echo "CITUS NOT AVAILABLE: $kit/install.sh failed: $(grep -v '^\s*$' "$log" | tail -1); the Citus suite does not run"
  exit 0
fi
if ! "$kit/cluster.sh" start >"$log" 2>&1; then
  echo "CITUS NOT AVAILABLE: $kit/cluster.sh start failed: $(grep -v '^\s*$' "$log" | tail -1); the Citus suite does not run"
  exit 0
fi
grep -v '^postgres://' "$log" | tail -3
tail -1 "$log"
