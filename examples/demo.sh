#!/bin/bash
# The main job on a machine whose PID 1 is not systemd (a container host, CI): install ripdep, boot
# a throw-away systemd container from this host's own root, deploy the example app in it twice
# (the second run changes nothing), print the app's answer through Caddy, and remove the container.
#   sudo examples/demo.sh            (KEEP=1 leaves the container running; stop: tests/ct.sh stop)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (sudo examples/demo.sh)" >&2; exit 3; }
./install.sh
dpkg-query -W -f='${Status}' systemd-container 2>/dev/null | grep -q "install ok installed" || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container >/dev/null; }

export CT_NAME=ripdep-demo CT_BINDS="--bind=$PWD --bind-ro=/opt/ripdep"
tests/ct.sh stop >/dev/null 2>&1 || true
tests/ct.sh start
[ "${KEEP:-0}" = 1 ] || trap 'tests/ct.sh stop >/dev/null' EXIT
tests/ct.sh exec ripdep init
echo "--- first deploy"
tests/ct.sh exec ripdep deploy hello --manifest "$PWD/examples/hello/ripdep.toml"
echo "--- second deploy (changes nothing)"
tests/ct.sh exec ripdep deploy hello
echo "--- the app, through Caddy: curl http://127.0.0.1/hello/"
tests/ct.sh exec curl -sS http://127.0.0.1/hello/
