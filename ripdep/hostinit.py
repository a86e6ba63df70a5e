"""`ripdep init`: prepare the host once (idempotent): folders, host settings, PostgreSQL's group role
and pg_hba rules, Caddy's imports and admin socket. Each part reads first and changes only what differs."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from ripdep.errors import PreconditionFailed, ValidationFailed
from ripdep.host.postgres import APPS_GROUP, SCRATCH_DB
from ripdep.host.proc import run
from ripdep.hostconfig import DEFAULT_TEXT, HostConfig, load_host_config
from ripdep.paths import PATHS, Paths
from ripdep.resources import Action, Change, EnsureDir, PgHba, Sql, Step, Systemctl, WriteFile
from ripdep.resources.file import unified_diff

HBA_BEGIN = "# BEGIN ripdep: app roles reach only their own database (ripdep init)"
HBA_END = "# END ripdep"
HBA_BLOCK = f"""{HBA_BEGIN}
local   sameuser        +{APPS_GROUP}                            peer
local   {SCRATCH_DB}  +{APPS_GROUP}                            peer
local   all             +{APPS_GROUP}                            reject
host    sameuser        +{APPS_GROUP}    all                     scram-sha-256
host    all             +{APPS_GROUP}    all                     reject
{HBA_END}
"""
CADDY_DROPIN = """# managed by ripdep: Caddy's admin socket lives in /run/caddy (caddy:caddy 0700), which apps cannot enter
[Service]
RuntimeDirectory=caddy
RuntimeDirectoryMode=0700
"""


def folders(paths: Paths) -> list[tuple[Path, int]]:
    return [
        (paths.host_config.parent, 0o755), (paths.manifests, 0o750), (paths.secrets_root, 0o700),
        (paths.env_root, 0o700), (paths.state_root.parent, 0o755), (paths.state_root, 0o700),
        (paths.apps_state_root, 0o755), (paths.code_root, 0o755), (paths.caddy_paths.parent, 0o755),
        (paths.caddy_paths, 0o755), (paths.caddy_hosts, 0o755), (paths.caddy_staging, 0o700),
    ]


def check_services(host) -> None:
    for unit, package in (("postgresql.service", "postgresql"), ("caddy.service", "caddy")):
        state = host.read_unit(unit)
        if state.load_state != "loaded":
            raise PreconditionFailed(f"{unit} is not installed", hint=f"apt-get install {package} (or sudo ./install.sh)")
        if state.active_state != "active":
            raise PreconditionFailed(f"{unit} is {state.active_state}, not running",
                                     hint=f"systemctl enable --now {unit}")
    if not shutil.which("caddy"):
        raise PreconditionFailed("the caddy command is missing", hint="apt-get install caddy")


def with_hba_block(text: str) -> str:
    """pg_hba.conf with ripdep's block above the distribution's first rule (pg_hba is first-match)."""
    lines = text.splitlines(keepends=True)
    if HBA_BEGIN + "\n" in lines:
        start = lines.index(HBA_BEGIN + "\n")
        end = next(i for i in range(start, len(lines)) if lines[i].strip() == HBA_END)
        del lines[start:end + 1]
    first_rule = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")),
                      len(lines))
    lines.insert(first_rule, HBA_BLOCK)
    return "".join(lines)


def admin_line(paths: Paths) -> str:
    return f"admin unix/{paths.caddy_admin_socket}"


def with_caddy_imports(text: str, site: str, paths: Paths) -> str:
    """The operator's Caddyfile plus: admin on a unix socket (global options), the path-route import
    inside `site`, the host-route import at the top level. Everything else stays as it was."""
    admin = admin_line(paths)
    paths_import = f"import {paths.caddy_paths}/*.caddy"
    hosts_import = f"import {paths.caddy_hosts}/*.caddy"
    metrics_import = f"import {paths.caddy_metrics}/*.caddy"
    lines = text.splitlines(keepends=True)
    if admin not in text:
        first = next((i for i, l in enumerate(lines) if l.strip() and not l.lstrip().startswith("#")), None)
        if first is not None and lines[first].strip() == "{":
            block_end = next(i for i in range(first, len(lines)) if lines[i].rstrip() == "}")
            if any(l.strip().startswith("admin") for l in lines[first:block_end]):
                raise PreconditionFailed("the Caddyfile's global options already set 'admin'",
                                         hint=f"replace it with '{admin}' so apps cannot reach the admin API")
            lines.insert(first + 1, f"\t{admin}  # ripdep: admin API off TCP, apps cannot reach it\n")
        else:
            lines[0:0] = ["# ripdep: Caddy's admin API on a unix socket that apps cannot reach\n",
                          "{\n", f"\t{admin}\n", "}\n", "\n"]
    if paths_import not in text:
        pattern = re.compile(rf"^\s*{re.escape(site)}\s*\{{\s*$")
        at = next((i for i, l in enumerate(lines) if pattern.match(l.rstrip("\n"))), None)
        if at is None:
            raise PreconditionFailed(f"no site block '{site} {{' in {paths.caddyfile} to carry path routes",
                                     hint="set caddy_path_site in /etc/ripdep/ripdep.toml to an existing site address")
        lines.insert(at + 1, f"\t{paths_import}  # ripdep: path routes\n")
    if hosts_import not in text:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"\n{hosts_import}  # ripdep: host routes\n")
    if metrics_import not in text:  # the loopback-only scrape site (docs/fleet.md)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{metrics_import}  # ripdep: metrics listener, loopback only\n")
    return "".join(lines)


def validate_caddyfile(text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ripdep-init.") as tmp:
        candidate = Path(tmp) / "Caddyfile"
        candidate.write_text(text)
        result = run(["caddy", "adapt", "--config", str(candidate), "--adapter", "caddyfile", "--validate"],
                     check=False, env={"HOME": tmp})
        if result.returncode != 0:
            raise ValidationFailed("the Caddyfile with ripdep's imports does not validate; it was not changed",
                                   details=result.stderr.strip().splitlines()[-10:])


def init_folders(host, paths: Paths) -> Step:
    changes = [Change(f"folder:{p}", Action.CREATE, f"ensure {p} mode {mode:04o}", ops=(EnsureDir(p, mode),))
               for p, mode in folders(paths) if host.dir_mode(p) != (mode, 0, 0)]
    if host.read_file(paths.host_config).content is None:
        changes.append(Change("config:ripdep.toml", Action.CREATE, f"write {paths.host_config}",
                              ops=(WriteFile(paths.host_config, DEFAULT_TEXT.encode(), 0o644),)))
    return Step("host:folders", changes, str(paths.host_config))


def init_postgres(host) -> Step:
    from psycopg import sql

    changes = []
    if not host.role_exists(APPS_GROUP):
        group = sql.Identifier(APPS_GROUP)
        changes.append(Change(f"role:{APPS_GROUP}", Action.CREATE, f"create group role {APPS_GROUP}", ops=(Sql((
            sql.SQL("CREATE ROLE {} NOLOGIN").format(group),
            sql.SQL("COMMENT ON ROLE {} IS {}").format(group, sql.Literal("managed by ripdep: group of all app roles")),
        ), transaction=True),)))
    hba = host.hba_file()
    current = host.read_file(hba)
    wanted = with_hba_block((current.content or b"").decode())
    if wanted.encode() != current.content:
        changes.append(Change("pg_hba:ripdep", Action.UPDATE, f"add ripdep's rules to {hba} and reload PostgreSQL",
                              unified_diff(hba, current.content, wanted.encode()),
                              ops=(PgHba(hba, wanted.encode(), current),)))
    return Step("postgresql:host", changes, f"app roles confined by {hba}")


def init_caddy(host, paths: Paths, site: str) -> Step:
    changes = []
    dropin = paths.units / "caddy.service.d" / "ripdep.conf"
    if host.read_file(dropin).content != CADDY_DROPIN.encode():
        changes.append(Change("unit:caddy.service", Action.UPDATE, f"write {dropin} (admin socket folder)",
                              ops=(WriteFile(dropin, CADDY_DROPIN.encode(), 0o644,
                                             dirs=((dropin.parent, 0o755),)),)))
    current = host.read_file(paths.caddyfile)
    text = (current.content or b"").decode()
    wanted = with_caddy_imports(text, site, paths)
    if wanted != text:
        validate_caddyfile(wanted)  # before anything changes
        keep = paths.caddyfile.with_name("Caddyfile.before-ripdep")
        changes.append(Change("caddy:Caddyfile", Action.UPDATE,
                              f"add ripdep's imports and admin socket to {paths.caddyfile}",
                              unified_diff(paths.caddyfile, current.content, wanted.encode()), ops=(
                                  WriteFile(keep, current.content or b"", current.mode or 0o644, current.uid or 0,
                                            current.gid or 0),
                                  WriteFile(paths.caddyfile, wanted.encode(), current.mode or 0o644, current.uid or 0,
                                            current.gid or 0))))
    if changes:
        # the admin endpoint moves and the runtime folder appears only with a restart, not a reload
        changes.append(Change("service:caddy.service", Action.RESTART, "restart Caddy",
                              ops=(Systemctl(("daemon-reload",)), Systemctl(("restart", "caddy.service")))))
    return Step("caddy:host", changes, f"path routes in site '{site}', admin on {paths.caddy_admin_socket}")


def init_host(paths: Paths = PATHS, progress=lambda step: None, check: bool = False, host=None) -> list[Step]:
    """The host's own resources, planned as values and applied by the same dispatcher as a deploy
    (folders first: the settings file the later parts read may be the one this run writes)."""
    from ripdep.apply import HostScope, apply_change
    from ripdep.host import Host

    host = host or Host()
    host.require_root()
    host.require_systemd()
    scope = HostScope(host, paths)
    try:
        check_services(host)
        steps = []
        for part in ("folders", "postgres", "caddy", "fleet"):
            if part == "folders":
                step = init_folders(host, paths)
            elif part == "postgres":
                step = init_postgres(host)
            elif part == "fleet":
                from ripdep import fleet

                settings = load_host_config(paths) if not check or paths.host_config.exists() else None
                step = fleet.init_step(host, paths, settings or HostConfig())
            else:
                settings = load_host_config(paths) if not check or paths.host_config.exists() else None
                step = init_caddy(host, paths, settings.caddy_path_site if settings else ":80")
            if not check:
                for change in step.changes:
                    apply_change(change, scope)
            steps.append(step)
            progress(step)
        return steps
    finally:
        host.close()
