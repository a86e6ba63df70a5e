#!/bin/bash
# Benchmarks, in a throw-away systemd container (tests/ct.sh). Prints markdown tables for
# docs/benchmarks.md.   sudo bench/run.sh [deploy] [status] [backup]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root" >&2; exit 3; }
export CT_NAME=ripdep-bench CT_BINDS="--bind=$PWD --bind-ro=/opt/ripdep"
tests/ct.sh stop >/dev/null 2>&1 || true
tests/ct.sh start >/dev/null
trap 'tests/ct.sh stop >/dev/null' EXIT
tests/ct.sh exec ripdep init >/dev/null
for what in "${@:-deploy}"; do
  tests/ct.sh exec /usr/bin/python3 "$PWD/bench/in_container.py" "$what"
done
