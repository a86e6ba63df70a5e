#!/bin/bash
# Everything the test suite needs on the host, installed BEFORE the systemd container boots (the
# container has no network): ripdep itself (install.sh), test-only Debian packages, and a test venv
# built from Debian's python3 (so units inside the container can execute it).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[ "$(id -u)" = 0 ] || { echo "tests/setup.sh: run as root" >&2; exit 3; }

# ripdep itself, plus the test-only packages: the container (systemd-nspawn), sshd and sudo for the
# tests over ssh (test_two_hosts.py), strace for the execve audit of the leak test, Debian's
# Prometheus, node_exporter and logrotate for the fleet test (tests/integration/test_fleet_metrics.py)
chmod -R o+rX examples tests/fixtures  # code ripdep copies must be readable by every user
RIPDEP_EXTRA_PACKAGES="systemd-container openssh-server openssh-client sudo iproute2 util-linux procps strace \
  prometheus prometheus-node-exporter logrotate" ./install.sh
# the packages enable their services; every test container boots this root file system, so only
# the fleet test starts them (with its own configuration)
systemctl disable --quiet prometheus.service prometheus-node-exporter.service 2>/dev/null || true

VENV=${RIPDEP_TEST_VENV:-/opt/ripdep-test}
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
# ansible-core 2.20+ needs Python 3.12 on the controller; Debian 12 has 3.11
"$VENV/bin/python" -m pip --disable-pip-version-check -q install "pytest>=7" "ansible-core>=2.15,<2.20" \
  "moto[server]>=5" "ruff>=0.4" "mypy>=1.8" "boto3>=1.28" "click>=8.1" "jinja2>=3.1" "psycopg>=3.1" "tomli-w>=1.0" "tomlkit>=0.12"
# a wheelhouse of ripdep's requirements (pyproject.toml's, and its build backend): test_two_hosts.py
# runs install.sh inside containers, which reach no registry. Wheels already there are reused.
WHEELS=${RIPDEP_TEST_WHEELS:-/var/cache/ripdep-test-wheels}
"$VENV/bin/python" -m pip --disable-pip-version-check -q wheel -w "$WHEELS" --find-links "$WHEELS" "hatchling>=1.18" .
echo "tests/setup.sh: ready (test venv $VENV)"
