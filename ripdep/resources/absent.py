"""absent:NAME — every resource of an app, planned away (`ripdep destroy`): the same Changes and
dispatcher as a deploy, so `destroy --check` shows exactly what a destroy would remove. Only what
carries ripdep's marker of this app is removed, in an order that keeps other apps serving: timers
first (none may fire into a half-removed app), the route (Caddy validated without it), the units,
secrets, database and role, user, folders, and ripdep's own record last (a crash converges on a
rerun, which finds the app by its record)."""

from __future__ import annotations

from ripdep.paths import Paths
from ripdep.render import MARKER, mask_env_file, parse_env_file
from ripdep.resources import (Action, CaddySwap, Change, DeleteUser, RemoveFile, RemoveTree, Sql, Step, Systemctl,
                              database)
from ripdep.resources.file import has_marker, unified_diff
from ripdep.resources.processes import existing_units
from ripdep.resources.user import gecos


def plan(host, paths: Paths, app: str) -> list[Step]:
    def marked(path) -> bool:
        return has_marker(host.read_file(path).content, MARKER.format(app=app))

    def gone(path) -> str:
        """The file's removal as a diff (--diff)."""
        return unified_diff(path, host.read_file(path).content, b"")

    steps = []
    timers = [n for n in (paths.backup_unit_name(app, "timer"), paths.backup_unit_name(app))
              if marked(paths.units / n)]
    steps.append(Step(f"backup-timer:{app}", [
        Change(f"unit:{n}", Action.REMOVE, f"remove {n}", gone(paths.units / n),
               ops=(Systemctl(("disable", "--now", n), quiet=True), RemoveFile(paths.units / n))) for n in timers]))

    snippets = {p: host.read_file(p).content for p in (paths.path_snippet(app), paths.host_snippet(app)) if marked(p)}
    route = []
    if snippets:
        host.caddy_validate({p: None for p in snippets}, paths)  # the others' routes still load without it
        route = [Change(f"route:{app}", Action.REMOVE, f"remove {', '.join(map(str, snippets))}",
                        "".join(map(gone, snippets)), ops=(CaddySwap({p: None for p in snippets}, snippets),))]
    steps.append(Step(f"route:{app}", route))

    unit = paths.unit_name(app)
    # processes and job timers first: they must not outlive the app, nor a job start into its removal
    extra = existing_units(host, paths, app)
    units = [n for n in (*extra, unit, paths.proxy_socket_name(app), paths.proxy_service_name(app))
             if marked(paths.units / n)]
    wants = [RemoveTree(paths.app_wants(app))] if host.is_dir(paths.app_wants(app)) else []
    steps.append(Step(f"unit:{unit}", [Change(f"unit:{unit}", Action.REMOVE, f"stop and remove {', '.join(units)}",
                                              "".join(gone(paths.units / n) for n in units), ops=(
        Systemctl(("stop", *units), quiet=True), RemoveFile(paths.units / "multi-user.target.wants" / unit), *wants,
        *(RemoveFile(paths.units / n) for n in units), Systemctl(("daemon-reload",)),
        Systemctl(("reset-failed", *units), quiet=True)))] if units or wants else []))

    secrets = []
    if marked(paths.env_file(app)):
        text = (host.read_file(paths.env_file(app)).content or b"").decode(errors="replace")
        masked = mask_env_file(text, set(parse_env_file(text))).encode()  # every value: it is going
        secrets.append(Change(f"env:{app}", Action.REMOVE, f"remove {paths.env_file(app)}",
                              unified_diff(paths.env_file(app), masked, b""), ops=(RemoveFile(paths.env_file(app)),)))
    if host.is_dir(paths.secrets(app)):
        secrets.append(Change(f"secrets:{app}", Action.REMOVE, f"remove {paths.secrets(app)}",
                              ops=(RemoveTree(paths.secrets(app)),)))
    steps.append(Step(f"env:{app}", secrets))

    steps.append(Step(f"database:{app}", _database(host, app)))

    user = host.read_user(app)
    folders = []
    if user is not None and user.gecos == gecos(app):
        folders.append(Change(f"user:{app}", Action.REMOVE, f"remove user and group {app}", ops=(DeleteUser(app),)))
    if host.is_link(paths.code(app)):  # the code link of the releases layout
        folders.append(Change(f"code:{app}", Action.REMOVE, f"remove {paths.code(app)}",
                              ops=(RemoveFile(paths.code(app)),)))
    elif host.is_dir(paths.code(app)):  # the layout before releases
        folders.append(Change(f"code:{app}", Action.REMOVE, f"remove {paths.code(app)}",
                              ops=(RemoveTree(paths.code(app)),)))
    for folder, rid in ((paths.app_state_dir(app), "state-dir"), (paths.releases_root(app), "releases"),
                        (paths.release_records(app), "release-records"), (paths.config_dir(app), "files")):
        if host.is_dir(folder):
            folders.append(Change(f"{rid}:{app}", Action.REMOVE, f"remove {folder}", ops=(RemoveTree(folder),)))
    steps.append(Step(f"user:{app}", folders))

    present = {"state": host.read_state(app, paths) is not None,
               "manifest": host.read_file(paths.manifest(app)).content is not None}
    records = [Change(f"{rid}:{app}", Action.REMOVE, f"remove {path}", ops=(RemoveFile(path),))
               for path, rid in ((paths.state(app), "state"), (paths.manifest(app), "manifest")) if present[rid]]
    steps.append(Step(f"manifest:{app}", records))
    return steps


def _database(host, app: str) -> list[Change]:
    from psycopg import sql

    role, db = host.read_app_db(app)
    mine = database.marker(app)
    changes = []
    # an unmarked database owned by our marked role is one a crash left between CREATE and COMMENT
    if db is not None and (db.comment == mine or (db.owner == app and role and role.comment == mine)):
        changes.append(Change(f"database:{app}", Action.REMOVE, f"drop database {app}", ops=(Sql((
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(app)),)),)))
    if role is not None and role.comment == mine:
        # a scratch database left by an interrupted restore would keep the role: it goes first
        changes.append(Change(f"role:{app}", Action.REMOVE, f"drop role {app}", ops=(Sql((
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"ripdep_prev_{app}")),
            sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(app)))),)))
    return changes


