#!/bin/bash
# Install, upgrade, roll back or uninstall ripdep on a Debian/Ubuntu host (docs/install.md).
#
#   sudo ./install.sh               install or upgrade to this checkout, then `ripdep init` where
#                                   systemd is PID 1. A rerun of the same checkout changes nothing
#                                   and needs no network.
#   sudo ./install.sh --rollback    switch back to the version installed before (again: forward)
#   sudo ./install.sh --uninstall   remove ripdep's program files; apps, databases, secrets and
#                                   backups stay
#
# Layout: $PREFIX is a venv from Debian's python3 holding ripdep's dependencies only; each build of
# ripdep gets its own folder $PREFIX/versions/VERSION+HASH; the symlink $PREFIX/current names the one
# in use and is switched with a rename; $PREFIX/bin/ripdep resolves it once per run, so a run that
# started before an upgrade finishes on the files it started with.
#
# env: RIPDEP_PREFIX (/opt/ripdep); RIPDEP_LINK=1|0: also manage the host-wide entry points
#      /usr/local/bin/ripdep, the bash completion and the apps' backup timers (default: 1 for
#      /opt/ripdep, 0 for any other prefix); RIPDEP_EXTRA_PACKAGES: more Debian packages.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $1" >&2; exit "${2:-1}"; }

MODE=install
case "$#:${1:-}" in
  0:) ;;
  1:--rollback) MODE=rollback ;;
  1:--uninstall) MODE=uninstall ;;
  1:-h|1:--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown arguments '$*' (usage: install.sh [--rollback | --uninstall])" 2 ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (sudo ./install.sh)" 3

DEFAULT_PREFIX=/opt/ripdep
PREFIX=${RIPDEP_PREFIX:-$DEFAULT_PREFIX}
case "$PREFIX" in
  /*/*|/[!/]*) PREFIX=$(realpath -ms -- "$PREFIX") ;;
  *) die "RIPDEP_PREFIX must be an absolute path below /, not '$PREFIX'" 2 ;;
esac
[ "$PREFIX" != / ] && [[ "$PREFIX" != *[[:space:]]* ]] || die "RIPDEP_PREFIX '$PREFIX' cannot hold ripdep" 2
if [ "$PREFIX" = "$DEFAULT_PREFIX" ]; then LINK=${RIPDEP_LINK:-1}; else LINK=${RIPDEP_LINK:-0}; fi
case "$LINK" in 0|1) ;; *) die "RIPDEP_LINK must be 0 or 1, not '$LINK'" 2 ;; esac
BIN_LINK=/usr/local/bin/ripdep
COMPLETION=/usr/share/bash-completion/completions/ripdep
WRAPPER=$PREFIX/bin/ripdep
UNITS=/etc/systemd/system

systemd_runs() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm)" = systemd ]; }
target() { readlink "$PREFIX/$1" 2>/dev/null || true; }  # versions/ID, or nothing
# point symlink $1 at $2 with one rename: a reader sees the old link or the new one, never none
switch_link() { ln -sfn -- "$2" "$1.new" && mv -fT -- "$1.new" "$1"; }
# stdin becomes file $1 (mode $2), replaced by a rename and only when it differs; says so
# (compared outside its folder: a rerun leaves even the folder's mtime alone)
replace_file() {
  local path=$1 mode=$2 tmp
  tmp=$(mktemp) && cat > "$tmp" || die "cannot write a temporary file"
  if cmp -s "$tmp" "$path"; then rm -f "$tmp"; return 0; fi
  { cp "$tmp" "$path.new" && chmod "$mode" "$path.new" && mv -fT "$path.new" "$path"; } || die "cannot replace $path"
  rm -f "$tmp"
  say "wrote $path"
}
# the venv's site-packages, where an install from before the versioned layout put ripdep itself
site_packages() { "$PREFIX/bin/python" -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null; }
looks_like_ours() { [ -f "$PREFIX/pyvenv.cfg" ] && { [ -d "$PREFIX/versions" ] || [ -d "$(site_packages)/ripdep" ]; }; }

# one install.sh at a time per prefix (two would build and prune under each other)
lock() { mkdir -p "$PREFIX" && exec 9>> "$PREFIX/.install.lock" && flock 9; }

# ---------------------------------------------------------------------------------------------
rollback() {
  [ -d "$PREFIX/versions" ] || die "no versioned ripdep at $PREFIX to roll back (install one with ./install.sh)" 4
  lock
  local cur prev
  cur=$(target current) prev=$(target previous)
  [ -n "$prev" ] && [ -d "$PREFIX/$prev" ] || die "no previous version at $PREFIX to roll back to (only ${cur#versions/} is installed)" 4
  switch_link "$PREFIX/current" "$prev"
  switch_link "$PREFIX/previous" "$cur"
  say "rolled back: ripdep ${prev#versions/} is in use at $PREFIX (was ${cur#versions/}; 'install.sh --rollback' again switches back)"
  say "apps deployed by ${cur#versions/} keep their files until their next deploy ('ripdep status' names them)"
}

# ---------------------------------------------------------------------------------------------
uninstall() {
  if [ ! -e "$PREFIX" ]; then
    say "nothing installed at $PREFIX"
  else
    looks_like_ours || die "$PREFIX does not look like a ripdep install (no venv with ripdep in it); removed nothing" 4
  fi
  if [ "$LINK" = 1 ]; then
    # the apps' scheduled backups run /usr/local/bin/ripdep: without it they can only fail. Exactly
    # ripdep-backup-APP.{timer,service} of the app its marker names: app backup-x's own units
    # (ripdep-backup-x.service, .proxy.service, .job.J.timer) match the glob and must stay.
    local timers=() f app
    for f in "$UNITS"/ripdep-backup-*.timer "$UNITS"/ripdep-backup-*.service; do
      [ -f "$f" ] || continue
      app=$(sed -n '1s/^# managed by ripdep: app \([a-z0-9-]*\)$/\1/p' "$f")
      case "${f##*/}" in "ripdep-backup-$app.timer"|"ripdep-backup-$app.service") [ -n "$app" ] && timers+=("$f") ;; esac
    done
    if [ ${#timers[@]} -gt 0 ]; then
      if systemd_runs; then
        for f in "${timers[@]}"; do
          [[ "$f" == *.timer ]] && systemctl disable --now --quiet "$(basename "$f")" 2>/dev/null || true
        done
      fi
      for f in "${timers[@]}"; do rm -f -- "$f" "$UNITS/timers.target.wants/$(basename "$f")"; done
      systemd_runs && systemctl daemon-reload
      say "removed the scheduled backups: ${timers[*]##*/} ('ripdep deploy APP' after a reinstall brings them back)"
    fi
    if [ -L "$BIN_LINK" ] && [ "$(readlink "$BIN_LINK")" = "$WRAPPER" ]; then
      rm -f "$BIN_LINK"; say "removed $BIN_LINK"
    elif [ -e "$BIN_LINK" ] || [ -L "$BIN_LINK" ]; then
      say "left $BIN_LINK alone: it is not a link to $WRAPPER"
    fi
    if [ -f "$COMPLETION" ] && grep -q _RIPDEP_COMPLETE "$COMPLETION"; then rm -f "$COMPLETION"; say "removed $COMPLETION"; fi
    if [ -d /var/cache/ripdep ]; then rm -rf /var/cache/ripdep; say "removed /var/cache/ripdep (compiled templates)"; fi
  fi
  if [ -e "$PREFIX" ]; then
    lock
    rm -rf -- "$PREFIX"
    say "removed $PREFIX (ripdep's versions and its dependencies' venv)"
  fi
  say "kept every app and its data: units ripdep-APP.service (still running), /etc/ripdep (manifests, secrets," \
      "env files, settings), /var/lib/ripdep (ripdep's records, the apps' state dirs), /srv/ripdep (code)," \
      "PostgreSQL roles and databases, /var/backups/ripdep (backups), Caddy's routes. Reinstall with ./install.sh."
}

[ "$MODE" = rollback ] && { rollback; exit 0; }
[ "$MODE" = uninstall ] && { uninstall; exit 0; }

# --- install or upgrade ----------------------------------------------------------------------
PACKAGES=(postgresql caddy python3-venv python3-dev libsystemd-dev gcc pkg-config python3-psycopg
          systemd curl bash-completion)
# more packages installed in the same step (tests/setup.sh adds what the test suite needs)
read -r -a EXTRA <<< "${RIPDEP_EXTRA_PACKAGES:-}"
PACKAGES+=("${EXTRA[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VERSION=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' ripdep/__init__.py)
[ -n "$VERSION" ] || die "no __version__ in ripdep/__init__.py: is this a ripdep checkout?" 2
# what goes into the package (hatch's wheel: ripdep/, units/, caddy/ and pyproject.toml), by content
HASH=$(find ripdep units caddy pyproject.toml -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
       | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
ID=$VERSION+$HASH

lock
was_versioned=0; [ -L "$PREFIX/current" ] && was_versioned=1

# The dependencies' venv is built from Debian's python3: app users and systemd units can execute
# it, unlike a pyenv Python under /root. An install from before the versioned layout is this venv.
if [ ! -x "$PREFIX/bin/python" ]; then
  say "creating venv $PREFIX"
  /usr/bin/python3 -m venv "$PREFIX"
fi
PIP=("$PREFIX/bin/python" -m pip --disable-pip-version-check -q)
# Satisfied requirements are not looked up again, so a rerun needs no network.
"${PIP[@]}" install "hatchling>=1.18" "click>=8.1" "jinja2>=3.1" "psycopg>=3.1" "boto3>=1.28" \
  "tomli-w>=1.0" "tomlkit>=0.12"
if ! "$PREFIX/bin/python" -c 'import pystemd' 2>/dev/null; then
  say "building pystemd (needs gcc, libsystemd-dev; ~20 s)"
  "${PIP[@]}" install "pystemd>=0.13"
fi

# ripdep itself, built from this checkout into a folder of its own, beside the versions in use
mkdir -p "$PREFIX/versions"
rm -rf "$PREFIX"/versions/.new-*  # left by an install.sh that died
if [ -d "$PREFIX/versions/$ID" ]; then
  built=0
else
  new=$PREFIX/versions/.new-$ID
  "${PIP[@]}" install --no-deps --no-index --no-build-isolation --target "$new" . >/dev/null
  rm -rf "$new/bin"  # pip's own entry point would bypass $PREFIX/current
  echo "$ID" > "$new/ripdep/BUILD"
  # the build imports and knows who it is before anything points at it
  got=$("$PREFIX/bin/python" -I -c 'import sys; sys.path.insert(0, sys.argv[1])
import ripdep, ripdep.cli, ripdep.engine, ripdep.status
assert ripdep.__file__.startswith(sys.argv[1] + "/"), ripdep.__file__
print(ripdep.BUILD)' "$new") || die "the new build at $new does not import; nothing was switched"
  [ "$got" = "$ID" ] || die "the new build says it is '$got', not '$ID'; nothing was switched"
  mv -T "$new" "$PREFIX/versions/$ID"
  built=1
fi

# the switch: current names the new version (one rename), previous the one before it
old=$(target current)
if [ "$old" != "versions/$ID" ]; then
  switch_link "$PREFIX/current" "versions/$ID"
  [ -n "$old" ] && [ -d "$PREFIX/$old" ] && switch_link "$PREFIX/previous" "$old"
fi

# the entry point: version-independent, written once (an install from before replaces pip's script)
mkdir -p "$PREFIX/bin"
replace_file "$WRAPPER" 0755 <<EOF
#!$PREFIX/bin/python
# ripdep's entry point, written by install.sh (docs/install.md). $PREFIX/current names the version
# in use. It is resolved once, here: every module of this run, even one imported late, comes from
# the version the run started with, whatever an upgrade switches meanwhile.
import os
import sys

home = os.path.realpath("$PREFIX/current")
if not os.path.isdir(os.path.join(home, "ripdep")):
    sys.exit("ripdep: no version at $PREFIX/current (reinstall: sudo ./install.sh)")
sys.path[0] = home  # instead of this script's folder, which holds no modules
from ripdep.fast import main  # noqa: E402  (ripdep list without click; the rest through ripdep.cli)

main()
EOF

# keep the version in use and the one before it (for --rollback); a run still on an older one has
# long finished
keep_cur=$(target current) keep_prev=$(target previous)
for d in "$PREFIX"/versions/*; do
  [ -d "$d" ] || continue
  rel=versions/${d##*/}
  if [ "$rel" != "$keep_cur" ] && [ "$rel" != "$keep_prev" ]; then rm -rf -- "$d"; say "removed old version ${d##*/}"; fi
done
# An install from before this layout kept ripdep in the venv's site-packages; a run started from
# it may still be going while this first versioned install switches. The next install removes it.
if [ "$was_versioned" = 1 ]; then
  site=$(site_packages)
  if [ -d "$site/ripdep" ]; then
    rm -rf -- "$site/ripdep" "$site"/ripdep-*.dist-info
    say "removed the unversioned ripdep from $site"
  fi
fi

if [ "$LINK" = 1 ]; then
  if [ "$(readlink "$BIN_LINK" 2>/dev/null)" != "$WRAPPER" ]; then
    mkdir -p "$(dirname "$BIN_LINK")"
    switch_link "$BIN_LINK" "$WRAPPER"
    say "linked $BIN_LINK -> $WRAPPER"
  fi
  # click's own bash completion; app names come from `ripdep` itself at completion time
  mkdir -p "$(dirname "$COMPLETION")"
  script=$(_RIPDEP_COMPLETE=bash_source "$WRAPPER")
  printf '%s\n' "$script" | replace_file "$COMPLETION" 0644
fi

if [ "$built" = 1 ]; then
  say "installed ripdep $ID at $PREFIX${old:+ (before: ${old#versions/}; 'install.sh --rollback' switches back)}"
elif [ "$old" != "versions/$ID" ]; then
  say "switched to ripdep $ID at $PREFIX (already installed${old:+; before: ${old#versions/}})"
else
  say "ripdep $ID at $PREFIX is up to date"
fi

if systemd_runs; then
  "$WRAPPER" init
else
  say "systemd is not PID 1 here; skipped 'ripdep init' (run it on a host that boots with systemd)"
fi
