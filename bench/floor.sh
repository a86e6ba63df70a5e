#!/bin/bash
# The floor ripdep is measured against: the same deploy of the same app, done the naive way by a
# bash script (useradd, one psql, files compared with cmp and written when they differ, systemctl,
# caddy reload, curl). It writes the very text ripdep renders: bench/in_container.py deploys one
# template app with ripdep and keeps its unit, proxy units, env file and Caddy snippet with the
# app's name and port replaced by @APP@ and @PORT@ (FLOOR_TPL, default /tmp/floor-tpl), so both
# sides do the same work. What it leaves out of ripdep's work: the unit's verification and exposure
# score, the Caddy validation on a private copy, ripdep's state file and locks, and every check
# that an object it finds is its own. Run as root inside the bench container:
#
#   floor.sh deploy APP PORT MANIFEST  create or converge (a rerun compares and changes nothing)
#   floor.sh config APP KEY=VALUE      rewrite the env file with KEY's new value, restart, health check
#   floor.sh status APP...             one `systemctl show` of the apps' units (what status reads)
#   floor.sh dump DB FILE              pg_dump -Fc of a database
set -euo pipefail
TPL=${FLOOR_TPL:-/tmp/floor-tpl}
UNITS=/etc/systemd/system
# PostgreSQL's own binaries, as ripdep uses them (/usr/bin/psql is a Perl wrapper, ~30 ms a call)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)

[ -f "$TPL/unit" ] || { echo "floor.sh: no templates in $TPL (bench/in_container.py makes them)" >&2; exit 2; }

render() {  # render TEMPLATE APP PORT: the text ripdep rendered for the template app, for APP
  sed -e "s/@APP@/$2/g" -e "s/@PORT@/$3/g" "$TPL/$1"
}

put() {  # put FILE MODE: stdin to FILE (atomic, via a temp file) unless it already holds exactly that
  local tmp; tmp=$(mktemp "$1.XXXXXX")
  cat > "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  chmod "$2" "$tmp"; mv -f "$tmp" "$1"
}

health() {  # health APP: GET through Caddy until it answers 2xx/3xx (every 50 ms, 30 s at most)
  local i
  for i in $(seq 600); do
    curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1/$1/" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "floor.sh: $1 failed its health check" >&2; return 1
}

deploy() {
  local app=$1 port=$2 manifest=$3 unit="ripdep-$1.service" changed="" reload=""
  local src; src=$(dirname "$(readlink -f "$manifest")")
  id -u "$app" >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
    --home-dir "/var/lib/ripdep/apps/$app" --shell /usr/sbin/nologin --comment "ripdep app $app" "$app"
  # role and database, each created only when missing (psql's \gexec runs the generated statements)
  runuser -u postgres -- "$PGBIN/psql" -XqAt -v ON_ERROR_STOP=1 -v app="$app" -d postgres <<'SQL'
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'app')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('GRANT ripdep_apps TO %I', :'app'), format('COMMENT ON ROLE %I IS %L', :'app', 'managed by ripdep: app ' || :'app')
 WHERE NOT pg_has_role(:'app', 'ripdep_apps', 'MEMBER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app', :'app')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app') \gexec
SELECT format('COMMENT ON DATABASE %I IS %L', :'app', 'managed by ripdep: app ' || :'app'),
       format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'app'),
       format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'app', :'app')
 WHERE shobj_description((SELECT oid FROM pg_database WHERE datname = :'app'), 'pg_database') IS NULL \gexec
SQL
  mkdir -p /etc/ripdep-floor; put "/etc/ripdep-floor/$app.toml" 0640 < "$manifest" || true
  # the secret: generated once, kept
  local store=/etc/ripdep/secrets/$app
  if [ ! -s "$store/SECRET_KEY" ]; then
    install -d -m 0700 "$store"
    (umask 077; head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' > "$store/SECRET_KEY")
  fi
  { render env "$app" "$port" | grep -v '^SECRET_KEY='; printf 'SECRET_KEY="%s"\n' "$(cat "$store/SECRET_KEY")"; } \
    | put "/etc/ripdep/env/$app.env" 0600 && changed=1
  # the code: root-owned, group-readable by the app; copied again when it differs
  local code=/srv/ripdep/$app
  if ! diff -rq "$src" "$code" >/dev/null 2>&1; then
    rm -rf "$code.new"; cp -r "$src" "$code.new"
    chown -R "root:$app" "$code.new"; chmod -R u=rwX,g=rX,o= "$code.new"
    rm -rf "$code"; mv "$code.new" "$code"; changed=1
  fi
  render unit "$app" "$port" | put "$UNITS/$unit" 0644 && reload=1
  render socket "$app" "$port" | put "$UNITS/ripdep-$app.proxy.socket" 0644 && reload=1
  render proxy "$app" "$port" | put "$UNITS/ripdep-$app.proxy.service" 0644 && reload=1
  [ -L "$UNITS/multi-user.target.wants/$unit" ] || ln -s "$UNITS/$unit" "$UNITS/multi-user.target.wants/$unit"
  [ -n "$reload" ] && systemctl daemon-reload
  if ! systemctl is-active -q "$unit"; then
    systemctl start "$unit"
  elif [ -n "$changed$reload" ]; then
    systemctl restart "$unit"
  fi
  if render caddy "$app" "$port" | put "/etc/caddy/ripdep/paths/$app.caddy" 0644; then
    caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile 2>/dev/null
  fi
  health "$app"
}

config() {  # config APP KEY=VALUE
  local app=$1 key=${2%%=*} value=${2#*=} env=/etc/ripdep/env/$1.env
  sed "s/^$key=.*/$key=\"$value\"/" "$env" | put "$env" 0600 || true
  systemctl restart "ripdep-$app.service"
  health "$app"
}

status() {  # the properties ripdep status reads, for every app's unit, in one systemctl process
  systemctl show --property=LoadState,ActiveState,SubState,MainPID,NRestarts,MemoryCurrent,MemoryMax,ActiveEnterTimestamp \
    "${@/%/.service}" > /dev/null
}

case "${1:-}" in
  deploy) deploy "$2" "$3" "$4" ;;
  config) config "$2" "$3" ;;
  status) shift; status "${@/#/ripdep-}" ;;
  dump) runuser -u postgres -- "$PGBIN/pg_dump" -Fc -h /run/postgresql -d "$2" -f "$3" ;;
  *) echo "usage: $0 deploy APP PORT MANIFEST | config APP KEY=VALUE | status APP... | dump DB FILE" >&2; exit 2 ;;
esac
