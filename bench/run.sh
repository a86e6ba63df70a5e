#!/bin/bash
# Benchmarks: ripdep side by side with bench/floor.sh (the same work, done the naive way in bash),
# in one throw-away systemd container (tests/ct.sh). Prints markdown tables for docs/benchmarks.md.
#
#   sudo bench/run.sh [deploy] [status] [backup] [fleet] [releases]      (default: all)
#   env: RIPDEP_PREFIX (the ripdep under test, /opt/ripdep)  BENCH_N (rounds, 7)  CT_NAME (ripdep-bench)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root" >&2; exit 3; }
PREFIX=${RIPDEP_PREFIX:-/opt/ripdep}
export CT_NAME=${CT_NAME:-ripdep-bench} CT_BINDS="--bind=$PWD --bind-ro=$PREFIX"
export CT_ENV="BENCH_N=${BENCH_N:-7}"
tests/ct.sh stop >/dev/null 2>&1 || true
tests/ct.sh start >/dev/null
trap 'tests/ct.sh stop >/dev/null' EXIT
# the host's /usr/local/bin/ripdep points at whichever prefix was installed last
tests/ct.sh exec ln -sfn "$PREFIX/bin/ripdep" /usr/local/bin/ripdep
tests/ct.sh exec ripdep init >/dev/null 2>&1
echo "ripdep $(tests/ct.sh exec ripdep --version) at $PREFIX ($(git rev-parse --short HEAD)), $(nproc) cores"
[ $# -gt 0 ] || set -- deploy status backup fleet releases
for what in "$@"; do
  echo; echo "## $what"
  tests/ct.sh exec /usr/bin/python3 "$PWD/bench/in_container.py" "$what"
done
