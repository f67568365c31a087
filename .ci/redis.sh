#!/usr/bin/env bash
# Makes Redis available for the BullMQ tests: the machine's 127.0.0.1:6379 when it answers,
# else Debian's redis-server installed here (the tests start it on a free port themselves).
# Idempotent; prints one line; never fails CI (the tests then fail loudly, not skip).
set -u
if command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  echo "redis: machine Redis at 127.0.0.1:6379 answers"; exit 0
fi
if command -v redis-server >/dev/null 2>&1; then
  echo "redis: no Redis on 6379; redis-server $(redis-server --version | awk '{print $3}') is installed, tests start their own"; exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1
  # The package's service may start on 6379; the tests use it, or start their own.
fi
if command -v redis-server >/dev/null 2>&1; then
  echo "redis: installed redis-server from apt; tests use 6379 or start their own"
else
  echo "redis: NOT AVAILABLE (no Redis on 6379 and redis-server could not be installed): the BullMQ tests will fail"
fi
exit 0
