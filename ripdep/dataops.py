"""Data safety: backup, restore and destroy of one app, each under the app's lock."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ripdep import backup, engine, names
from ripdep.errors import BackupInvalid, BadInput, PreconditionFailed, RipdepError, UnknownApp
from ripdep.host import systemd, users
from ripdep.host.postgres import SCRATCH_DB, Postgres
from ripdep.hostconfig import load_host_config
from ripdep.lock import app_lock, scratch_lock
from ripdep.ops import require_app
from ripdep.paths import PATHS, Paths
from ripdep.resources import Action, Change, Step, database
from ripdep.spec import load_manifest


@dataclass
class BackupResult:
    app: str
    backup: backup.BackupInfo | None = None
    removed: list[str] = field(default_factory=list)


def backup_app(app: str, paths: Paths = PATHS, progress=lambda msg: None, wait: float = 600) -> BackupResult:
    """Take and verify a backup, copy it off-host if configured, prune old ones. A failure is
    recorded (status shows it) and raised."""
    engine.require_root()
    require_app(app, paths)
    spec = load_manifest(app, paths.manifest(app))
    host = load_host_config(paths)
    with app_lock(app, paths, wait=wait):
        return _backup_locked(spec, host, paths, progress)


def _backup_locked(spec, host, paths: Paths, progress) -> BackupResult:
    app = spec.name
    try:
        folder = backup.take(spec, paths, progress)
        info = backup.verify(folder, spec, paths, progress)
        if info.verified and host.s3_bucket:
            from ripdep import s3  # boto3 only when off-host copies are configured

            progress(f"backup {app} ... uploading to s3://{host.s3_bucket}")
            info.remote = s3.upload(folder, app, host)
    except RipdepError as e:
        try:
            backup.record_last_run(app, False, None, e.message, paths)
        except OSError:  # a full disk: the error itself is what the operator needs
            pass
        raise
    backup.record_last_run(app, bool(info.verified), info.name, info.verify_error, paths)
    removed = backup.prune(app, backup.keep_for(spec, host), paths)
    backup.require_verified(info)
    return BackupResult(app, info, removed)


def list_backups(app: str, paths: Paths = PATHS, remote: bool = True) -> list[dict]:
    """Local and (when configured) remote copies, by backup name, newest last."""
    names.check_app_name(app)
    host = load_host_config(paths)
    rows = {b.name: {**b.as_dict(), "local": True, "remote": None, "remote_verified": None}
            for b in backup.local_backups(app, paths)}
    if remote and host.s3_bucket:
        from ripdep import s3

        for name, entry in s3.remote_backups(app, host).items():
            row = rows.setdefault(name, {"app": app, "name": name, "path": None, "size_bytes": entry["size_bytes"],
                                         "verified": None, "verify_error": None, "verify_seconds": None,
                                         "local": False})
            row["remote"], row["remote_verified"] = entry["url"], entry["verified"]
    if not rows and not paths.manifest(app).exists():
        raise UnknownApp(f"app {app!r} is not managed by ripdep and has no backups")
    return [rows[k] for k in sorted(rows)]


# --- restore ----------------------------------------------------------------------------------

def _swap_database(app: str, pg: Postgres) -> None:
    """The scratch database (restored, owned by the app's role) becomes the app's: the live one is
    renamed aside first and dropped last, so no moment is without one of them."""
    aside = f"ripdep_prev_{app}"  # "_" never occurs in an app name: never another app's database
    pg.drop_database(aside)
    if pg.read_app(app)[1] is not None:
        pg.rename_database(app, aside)
    pg.rename_database(SCRATCH_DB, app)
    for statement in database._database_sql(app, create=False):
        pg.execute(statement)
    pg.drop_database(aside)


def _swap_state_dir(staged: Path, target: Path) -> None:
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.lexists(target):
        os.rename(target, old)
    os.rename(staged, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staged.parent, ignore_errors=True)


def restore_app(app: str, ref: str, yes: bool, paths: Paths = PATHS, progress=lambda s: None) -> engine.RunResult:
    """Every part is checked and staged beside the live app (database restored by the app's role into
    the scratch database, state dir unpacked as the app's user) while the app keeps serving; only when
    all are ready is it stopped and each part swapped in by rename. A refusal changes nothing.

    An app that does not exist on this host (moved from another one, or destroyed here) is created
    from the backup alone: its manifest, validated as `deploy --manifest` does, is deployed with the
    app stopped, the parts are restored into it, and only then is it started."""
    engine.require_root()
    names.check_app_name(app)
    new = not paths.manifest(app).exists()
    if not new:
        require_app(app, paths)
    folder = backup.find(app, ref, paths)
    if not yes:
        what = "creates app {app} from" if new else f"replaces {app}'s database, state dir and secrets with"
        raise BadInput(f"restore {what.format(app=app)} backup {folder.name}",
                       hint=f"add --yes: ripdep restore {app} {ref} --yes")
    problems = backup.check_contents(folder, app)
    if problems:
        raise BackupInvalid(f"backup {folder.name} fails its checks; nothing was changed", details=problems)
    if new:
        backup.check_manifest(folder, app)
    systemd.require_systemd()
    with app_lock(app, paths):
        if new:
            if paths.manifest(app).exists():
                raise PreconditionFailed(f"app {app} was deployed while the backup was checked; nothing was changed",
                                         hint=f"run the restore again: ripdep restore {app} {ref} --yes")
            return _restore_new(app, folder, paths, progress)
        step = _restore_parts(app, folder, paths)
        progress(step)
        # re-render the env file from the restored secrets and start the app, health-checked
        result = engine.deploy(app, paths=paths, progress=progress, lock=False)
        result.steps.insert(0, step)
        return result


def _restore_new(app: str, folder: Path, paths: Paths, progress) -> engine.RunResult:
    """Create the app from the backup's manifest, stopped (it never runs without its data or with
    secrets other than its own), restore its parts into it, then start it. A failure before the start
    removes what was created (only what carries ripdep's marker), so a refusal leaves nothing."""
    store = paths.secrets(app)
    made_store = not os.path.lexists(store)
    try:
        # the backup's secrets first: a generated one keeps its value, a stored one has its value
        _write_secrets(app, folder, paths)
        created = engine.converge(app, folder / "manifest.toml", verb=CREATE_STOPPED, paths=paths,
                                  progress=progress, lock=False)
        step = _restore_parts(app, folder, paths)
    except Exception as e:
        gone, undone = _undo_create(app, paths, store if made_store else None)
        if isinstance(e, RipdepError):
            e.details = [*e.details, undone]
            if gone:
                e.result = None  # what was created is gone again: nothing to report as changed
        raise
    progress(step)
    result = engine.converge(app, verb=engine.Verb("running", "app"), paths=paths, progress=progress, lock=False)
    result.steps = _merge_steps(created.steps + [step] + result.steps)
    return result


# a deploy of every resource that records, and leaves, the app stopped
CREATE_STOPPED = engine.Verb("stopped", "app")


def _undo_create(app: str, paths: Paths, store: Path | None) -> tuple[bool, str]:
    """Take back what a restore created (whether that worked, and what to tell the operator)."""
    try:
        engine.remove(app, paths=paths, lock=False)
    except UnknownApp:  # refused before the deploy applied anything: only the secrets were written
        if store is not None:
            shutil.rmtree(store, ignore_errors=True)
        return True, f"nothing of app {app} was left behind"
    except Exception as e:  # the original failure is what the operator needs first
        return False, f"removing the half-created app {app} failed too ({e}): ripdep destroy {app} --yes --backup"
    return True, f"app {app}, created for this restore, was removed again"


def _merge_steps(steps: list[Step]) -> list[Step]:
    """One step per resource: the changes of every pass, in order, and the last pass's note."""
    merged: dict[str, Step] = {}
    for step in steps:
        if step.id in merged:
            merged[step.id] = Step(step.id, merged[step.id].changes + step.changes, step.note)
        else:
            merged[step.id] = Step(step.id, list(step.changes), step.note)
    return list(merged.values())


def _restore_parts(app: str, folder: Path, paths: Paths) -> Step:
    with scratch_lock(paths):
        spec = load_manifest(app, paths.manifest(app))
        if users.read_user(app) is None:
            raise PreconditionFailed(f"user {app} does not exist", hint=f"deploy the app first: ripdep deploy {app}")
        with_db = spec.database and (folder / "db.dump").exists()
        pg = Postgres()
        staged = None
        try:
            if with_db:
                error = backup.restore_database(folder / "db.dump", app, backup.backup_locale(folder, spec), pg)
                if error:
                    raise BackupInvalid(f"db.dump of {folder.name} does not restore; nothing was changed",
                                        details=error.splitlines()[-10:])
            staged = backup.stage_state(folder / "state.tar", app, paths, "restore")
            unit = paths.unit_name(app)
            changes = [Change(f"service:{unit}", Action.STOP, f"stop {unit}")]
            systemd.systemctl("stop", unit)
            if with_db:
                _swap_database(app, pg)
                changes.append(Change(f"database:{app}", Action.RESTORE, f"restore database {app} from {folder.name}"))
            _swap_state_dir(staged, paths.app_state_dir(app))
            staged = None
        except BaseException:
            if staged is not None:
                shutil.rmtree(staged.parent, ignore_errors=True)
            pg.drop_database(SCRATCH_DB)
            raise
        finally:
            pg.close()
        changes.append(Change(f"state-dir:{app}", Action.RESTORE, f"restore {paths.app_state_dir(app)} (owner {app})"))
        _write_secrets(app, folder, paths)
        changes.append(Change(f"secrets:{app}", Action.RESTORE, f"restore secrets from {folder.name}"))
        return Step(f"restore:{app}", changes, f"from {folder}")


def _write_secrets(app: str, folder: Path, paths: Paths) -> None:
    from ripdep.secret import Secret, write_secret

    for secret in sorted((folder / "secrets").glob("*")):
        write_secret(paths.secrets(app), secret.name, Secret(secret.read_text()))


# --- destroy ----------------------------------------------------------------------------------

def fresh_verified_backup(app: str, max_age: int, paths: Paths = PATHS) -> backup.BackupInfo | None:
    good = [b for b in backup.local_backups(app, paths) if b.verified and b.age_seconds <= max_age]
    return good[-1] if good else None


def destroy_app(app: str, yes: bool, take_backup: bool, paths: Paths = PATHS, progress=lambda s: None,
                check: bool = False) -> engine.RunResult:
    """desired = absent (engine.remove), only behind a fresh verified backup whose content checks
    pass again now. --check plans the removal and says whether the backup rule would refuse it."""
    names.check_app_name(app)
    if not yes and not check:
        raise BadInput(f"destroy removes every resource of {app}; its backups are kept",
                       hint=f"add --yes (and --backup to take a verified backup first): ripdep destroy {app} --yes")
    def guard(check: bool) -> list[Step]:
        settings = load_host_config(paths)
        if take_backup and not check:
            _backup_locked(load_manifest(app, paths.manifest(app)), settings, paths, lambda msg: None)
        kept = fresh_verified_backup(app, settings.destroy_backup_max_age, paths)
        problems = backup.check_contents(Path(kept.path), app) if kept else []
        rid = f"backups:{app}"
        refusal: RipdepError
        if kept is None:
            refusal = PreconditionFailed(
                f"refusing to destroy {app}: no verified backup younger than {settings.destroy_backup_max_age} s",
                hint=f"take one now: ripdep destroy {app} --yes --backup (or ripdep backup {app} first)")
        elif problems:
            # its verification may be old: a file changed since then would make it no safety net at all
            refusal = BackupInvalid(f"refusing to destroy {app}: backup {kept.name} no longer passes its checks",
                                    hint=f"take a new one: ripdep destroy {app} --yes --backup", details=problems)
        else:
            return [Step(rid, [], f"kept in {paths.backups(app)} (newest verified: {kept.name})")]
        if not check:
            raise refusal
        what = "--backup would take one first" if take_backup else f"a real run would be refused: {refusal.message}"
        return [Step(rid, [], what)]

    return engine.remove(app, check=check, paths=paths, progress=progress, guard=guard)
