"""`ripdep releases APP` and `ripdep rollback APP [ID] [--with-data --yes]` (docs/releases.md).

A rollback is a deploy of an earlier release: its code tree and its manifest, through the same
engine (units, env, files, restart, health check), under the app's lock. The app is then pinned to
it: deploys without --manifest (config set, restore) keep it rather than release the source again.
--with-data also restores the verified backup taken before the live release's release phase."""

from __future__ import annotations

from dataclasses import replace

from ripdep import engine, names, releases
from ripdep.errors import BadInput
from ripdep.host import Host
from ripdep.lock import app_lock
from ripdep.ops import require_app
from ripdep.paths import PATHS, Paths
from ripdep.resources.manifest import temporary


def list_releases(app: str, paths: Paths = PATHS) -> list[dict]:
    names.check_app_name(app)
    engine.require_root()
    require_app(app, paths)
    host = Host()
    state = host.read_state(app, paths)
    live = state.release if state else ""
    records = releases.read_records(host, paths, app)
    previous = releases.previous_good(records, live)
    return [{**r.as_dict(), "live": r.id == live, "previous": previous is not None and r.id == previous.id,
             "tree_kept": host.is_dir(paths.releases_root(app) / r.tree)} for r in records]


def pick(records: list[releases.Release], live: str, ref: str | None) -> releases.Release:
    """The release asked for (a full id or a unique prefix), or the previous good one."""
    if ref is None:
        target = releases.previous_good(records, live)
        if target is None:
            raise BadInput("there is no earlier release to go back to", hint="ripdep releases APP lists them")
        return target
    found = [r for r in records if r.id.startswith(ref)]
    if len(found) != 1:
        raise BadInput(f"release {ref!r} {'is ambiguous' if found else 'does not exist'}",
                       hint="ripdep releases APP lists them")
    if found[0].id == live:
        raise BadInput(f"release {found[0].id} is already live")
    return found[0]


def rollback(app: str, ref: str | None = None, with_data: bool = False, yes: bool = False, paths: Paths = PATHS,
             progress=lambda step: None) -> engine.RunResult:
    names.check_app_name(app)
    engine.require_root()
    require_app(app, paths)
    host = Host()
    with app_lock(app, paths):
        state = host.read_state(app, paths)
        live_id = state.release if state else ""
        records = releases.read_records(host, paths, app)
        target = pick(records, live_id, ref)
        if not host.is_dir(paths.releases_root(app) / target.tree):
            raise BadInput(f"release {target.id}'s code tree was pruned", hint="ripdep releases APP: tree_kept")
        live = next((r for r in records if r.id == live_id), None)
        backup_folder = None
        if with_data:
            from ripdep import backup

            if live is None or not live.backup:
                raise BadInput(f"the live release {live_id or '-'} took no backup before a release phase: "
                               "there is no data to go back to", hint="roll back the code alone (without --with-data)")
            backup_folder = backup.find(app, live.backup, paths)
            if not yes:
                raise BadInput(f"--with-data replaces {app}'s database and state dir with backup {live.backup}, "
                               f"taken before release {live.id}: everything written since is lost",
                               hint=f"add --yes: ripdep rollback {app} {ref or ''} --with-data --yes".replace("  ", " "))
            problems = backup.check_contents(backup_folder, app)
            if problems:
                from ripdep.errors import BackupInvalid

                raise BackupInvalid(f"backup {live.backup} fails its checks; nothing was changed", details=problems)
        with temporary(target.id, target.manifest) as snapshot:
            result = engine.converge(app, snapshot, lock=False, host=host, paths=paths, progress=progress, pin=target)
        if live is not None:
            releases.write_record(host, paths, app, replace(live, outcome="rolled_back",
                                                            reason=f"ripdep rollback to {target.id}"))
        if backup_folder is not None:
            from ripdep.dataops import _restore_parts

            step = _restore_parts(app, backup_folder, paths)
            progress(step)
            again = engine.deploy(app, paths=paths, progress=progress, lock=False)
            result.steps += [step] + again.steps
            result.health = again.health
        return result
