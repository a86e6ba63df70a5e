#!/bin/bash
# Everything the test suite needs on the host, installed BEFORE the systemd container boots (the
# container has no network): ripdep itself (install.sh), test-only Debian packages, and a test venv
# built from Debian's python3 (so units inside the container can execute it).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[ "$(id -u)" = 0 ] || { echo "tests/setup.sh: run as root" >&2; exit 3; }

./install.sh

TEST_PACKAGES=(systemd-container openssh-server openssh-client iproute2 util-linux procps curl strace)
missing=()
for p in "${TEST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV=${RIPDEP_TEST_VENV:-/opt/ripdep-test}
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
# ansible-core 2.20+ needs Python 3.12 on the controller; Debian 12 has 3.11
"$VENV/bin/python" -m pip --disable-pip-version-check -q install "pytest>=7" "ansible-core>=2.15,<2.20" \
  "moto[server]>=5" "boto3>=1.28" "click>=8.1" "jinja2>=3.1" "psycopg>=3.1" "tomli-w>=1.0" "tomlkit>=0.12"
echo "tests/setup.sh: ready (test venv $VENV)"
