#!/bin/bash
# The whole test suite, from a fresh Debian 12 machine: sets up what the tests need, then runs
# unit tests and the integration tests in a throw-away systemd container.
#   sudo tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
tests/setup.sh
VENV=${RIPDEP_TEST_VENV:-/opt/ripdep-test}
export RIPDEP_REQUIRE_INTEGRATION=1   # integration tests fail, not skip, when they cannot run
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests: that is a broken suite, not a pass" >&2
  exit 1
fi
exit $rc
