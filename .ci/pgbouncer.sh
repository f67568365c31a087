#!/usr/bin/env bash
# Makes Debian's pgbouncer binary available for the PgBouncer test target (idempotent).
# Installs the apt package when the binary is missing; never starts the system service
# (the test harness starts its own instance with its own config and port).
# Prints one line; exits 0 when pgbouncer is usable, 1 when it truly cannot be installed here.
set -uo pipefail
find_bin() { command -v pgbouncer || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; }; }
bin=$(find_bin)
if [ -z "$bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log=$(mktemp)
    # policy-rc.d 101: do not start the packaged service on install
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ $had_policy = 0 ] && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pgbouncer; } >"$log" 2>&1
    [ $had_policy = 0 ] && rm -f /usr/sbin/policy-rc.d
    bin=$(find_bin)
    [ -z "$bin" ] && { echo "pgbouncer: could not be installed ($(tail -n 1 "$log")): the PgBouncer target is NOT run"; exit 1; }
  else
    echo "pgbouncer: not installed and apt-get is not usable as root here: the PgBouncer target is NOT run"
    exit 1
  fi
fi
echo "pgbouncer: $("$bin" --version 2>/dev/null | head -n 1) at $bin"
