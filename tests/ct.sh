#!/bin/bash
# A throw-away container whose PID 1 is a real systemd, for ripdep's integration tests and demo on
# a host whose own PID 1 is not systemd (CI, container hosts).
#
# It boots the host's own root filesystem under systemd-nspawn with a tmpfs overlay: everything
# installed on the host (postgresql, caddy, /opt/ripdep, the test venv) is visible inside, and every
# change made inside vanishes at stop. Install packages and build venvs BEFORE start: the container
# has a private network and reaches no registry.
#
# With CT_PERSIST=1 the changes survive a stop and the next start (a reboot: every service shuts
# down in order and boots again on the same disk): they are kept in a tmpfs mounted at
# $CT_STATE/persist on the host until `purge`.
#
# usage:  tests/ct.sh start | exec CMD ARGS... | sh 'CODE' | leader | stop | purge
# env:    CT_NAME (ripdep-ct)  CT_STATE (/var/tmp/$CT_NAME)  CT_BINDS ("--bind=/a --bind=/b:/c")
#         CT_NETWORK (nspawn's network options; default --private-network: loopback only, e.g.
#         --network-bridge=BRIDGE for a network of containers)  CT_PERSIST (1: keep changes across stop)
# needs:  systemd-container (systemd-nspawn), util-linux (unshare, nsenter)
set -euo pipefail
NAME=${CT_NAME:-ripdep-ct}
STATE=${CT_STATE:-/var/tmp/$NAME}
ROOT=$STATE/root
CG=/sys/fs/cgroup

leader() { local p; p=$(cat "$STATE/nspawn.pid" 2>/dev/null) || return 1; pgrep -P "$p" | head -n1; }
in_ct() {
  local l; l=$(leader) || { echo "container $NAME is not running" >&2; return 125; }
  nsenter --target "$l" --all -- /usr/bin/env -i \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb \
      ${CT_ENV:-} "$@"
}
fstype() { stat -f -c %T "$1" 2>/dev/null || echo none; }

start() {
  command -v systemd-nspawn >/dev/null || { echo "ct.sh: apt-get install -y systemd-container" >&2; exit 3; }
  if p=$(cat "$STATE/nspawn.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; then
    echo "ct.sh: container $NAME is already running" >&2; exit 1
  fi
  mkdir -p "$ROOT"; : > "$STATE/cgroups"
  # nspawn cannot ask a host systemd for a scope: give it cgroups of its own, or it creates
  # /payload and /supervisor at the hierarchy root.
  for h in systemd unified; do
    case "$(fstype $CG/$h)" in cgroupfs|cgroup2fs) mkdir -p "$CG/$h/$NAME"; echo "$CG/$h/$NAME" >> "$STATE/cgroups";; esac
  done
  # nspawn mounts the cgroup-v1 controllers read-only inside, which silently disables MemoryMax=,
  # TasksMax= and CPUQuota=: use child cgroups and a PID-1 wrapper that remounts them rw.
  local ctrls=() h cur d
  for h in memory pids cpu cpuacct; do
    [ "$(fstype $CG/$h)" = cgroupfs ] || continue
    cur=$(awk -F: -v h=$h '$2==h{print $3}' /proc/self/cgroup); d=$CG/$h${cur%/}/$NAME
    mkdir -p "$d"; echo "$d" >> "$STATE/cgroups"; ctrls+=("$h")
  done
  local init=(--boot)
  if [ ${#ctrls[@]} -gt 0 ]; then
    init=(--kill-signal=SIGRTMIN+3 -- /bin/sh -c \
      'for c in '"${ctrls[*]}"'; do mount -o remount,bind,rw /sys/fs/cgroup/$c; done; exec /lib/systemd/systemd')
  fi
  # nspawn refuses --directory=/ with --volatile=overlay: bind / (non-recursively) to $ROOT in a
  # private mount namespace. With CT_PERSIST the overlay is made here instead, its upper layer on a
  # tmpfs that outlives the container.
  local root=(/bin/sh -c 'mount --bind / "$0" && exec "$@"' "$ROOT") volatile=(--volatile=overlay)
  if [ -n "${CT_PERSIST:-}" ]; then
    mkdir -p "$STATE/persist" "$STATE/lower"
    mountpoint -q "$STATE/persist" || mount -t tmpfs -o mode=0700 ripdep-ct "$STATE/persist"
    mkdir -p "$STATE/persist/upper" "$STATE/persist/work"
    root=(/bin/sh -c 'mount --bind / "$1" && mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$0" && shift 2 && exec "$@"'
          "$ROOT" "$STATE/lower" "$STATE/persist")
    volatile=()
  fi
  (
    while read -r d; do echo $BASHPID > "$d/cgroup.procs"; done < "$STATE/cgroups"
    # --register=no --keep-unit: no host systemd/machined to talk to.
    # --system-call-filter=bpf: without it IPAddressDeny=/IPAddressAllow= are silently ignored.
    # shellcheck disable=SC2086
    exec setsid unshare --mount --propagation private -- "${root[@]}" \
      systemd-nspawn --quiet --directory="$ROOT" "${volatile[@]}" --register=no --keep-unit \
        --machine="$NAME" ${CT_NETWORK:---private-network} --system-call-filter=bpf ${CT_BINDS:-} "${init[@]}"
  ) > "$STATE/console.log" 2>&1 < /dev/null &
  echo $! > "$STATE/nspawn.pid"
  local l=""
  for _ in $(seq 1 400); do
    l=$(leader || true); [ -n "$l" ] && [ -S "/proc/$l/root/run/systemd/private" ] && break
    kill -0 "$(cat "$STATE/nspawn.pid")" 2>/dev/null || { echo "ct.sh: nspawn died:" >&2; cat "$STATE/console.log" >&2; stop; exit 1; }
    sleep 0.05
  done
  leader > "$STATE/leader.pid"
  local state; state=$(in_ct timeout 90 systemctl is-system-running --wait || true)
  echo "ct.sh: container $NAME leader=$(leader) state=$state"
  if [ "$state" != running ]; then in_ct systemctl --failed --no-pager >&2 || true; fi
}

stop() {
  local l p
  l=$(cat "$STATE/leader.pid" 2>/dev/null || true)
  if p=$(cat "$STATE/nspawn.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p"   # nspawn sends SIGRTMIN+3 to the container's systemd: orderly poweroff
    for _ in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$p" 2>/dev/null && { kill -KILL "$p"; sleep 0.5; }
  fi
  # if nspawn itself was killed earlier its container lives on: end its PID 1
  if [ -n "$l" ] && grep -qa systemd "/proc/$l/cmdline" 2>/dev/null; then kill -KILL "$l"; sleep 0.5; fi
  rm -f "$STATE/nspawn.pid" "$STATE/leader.pid"
  if [ -f "$STATE/cgroups" ]; then
    while read -r d; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done < "$STATE/cgroups"
  fi
  rm -rf "/run/systemd/nspawn/propagate/$NAME" "$STATE/cgroups"
  echo "ct.sh: container $NAME stopped"
}

purge() {  # stop, drop what CT_PERSIST kept, remove $STATE (rmdir only: never through a mount)
  stop
  if mountpoint -q "$STATE/persist"; then umount "$STATE/persist"; fi
  rm -f "$STATE/console.log"
  rmdir "$STATE/persist" "$STATE/lower" "$ROOT" "$STATE" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  exec) shift; in_ct "$@" ;;
  sh) shift; in_ct /bin/bash -c "$1" ;;
  leader) leader ;;
  stop) stop ;;
  purge) purge ;;
  *) echo "usage: $0 start | exec CMD... | sh 'CODE' | leader | stop | purge" >&2; exit 2 ;;
esac
