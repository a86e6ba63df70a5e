#!/bin/bash
# Install ripdep on a Debian/Ubuntu host: Debian packages, a venv from Debian's python3 at
# /opt/ripdep, /usr/local/bin/ripdep, then `ripdep init` where systemd is PID 1.
# Idempotent; needs no network once everything is installed.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo ./install.sh)" >&2; exit 3; }

PREFIX=${RIPDEP_PREFIX:-/opt/ripdep}
PACKAGES=(postgresql caddy python3-venv python3-dev libsystemd-dev gcc pkg-config python3-psycopg
          systemd curl)
# more packages installed in the same step (tests/setup.sh adds what the test suite needs)
read -r -a EXTRA <<< "${RIPDEP_EXTRA_PACKAGES:-}"
PACKAGES+=("${EXTRA[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv is built from Debian's python3: app users and systemd units can execute it, unlike a
# pyenv Python under /root.
if [ ! -x "$PREFIX/bin/python" ]; then
  echo "install.sh: creating venv $PREFIX"
  /usr/bin/python3 -m venv "$PREFIX"
fi
PIP=("$PREFIX/bin/python" -m pip --disable-pip-version-check -q)
# Satisfied requirements are not looked up again, so a rerun needs no network.
"${PIP[@]}" install "hatchling>=1.18" "click>=8.1" "jinja2>=3.1" "psycopg>=3.1" "boto3>=1.28" \
  "tomli-w>=1.0" "tomlkit>=0.12"
if ! "$PREFIX/bin/python" -c 'import pystemd' 2>/dev/null; then
  echo "install.sh: building pystemd (needs gcc, libsystemd-dev; ~20 s)"
  "${PIP[@]}" install "pystemd>=0.13"
fi
# ripdep itself, always from this checkout (so a rerun after `git pull` upgrades it)
"${PIP[@]}" install --no-deps --no-build-isolation --force-reinstall .
ln -sfn "$PREFIX/bin/ripdep" /usr/local/bin/ripdep
echo "install.sh: ripdep $("$PREFIX/bin/ripdep" --version) at $PREFIX"

if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm)" = systemd ]; then
  ripdep init
else
  echo "install.sh: systemd is not PID 1 here; skipped 'ripdep init' (run it on a host that boots with systemd)"
fi
