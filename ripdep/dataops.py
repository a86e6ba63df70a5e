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
    all are ready is it stopped and each part swapped in by rename. A refusal changes nothing."""
    engine.require_root()
    require_app(app, paths)
    folder = backup.find(app, ref, paths)
    if not yes:
        raise BadInput(f"restore replaces {app}'s database, state dir and secrets with backup {folder.name}",
                       hint=f"add --yes: ripdep restore {app} {ref} --yes")
    problems = backup.check_contents(folder, app)
    if problems:
        raise BackupInvalid(f"backup {folder.name} fails its checks; nothing was changed", details=problems)
    systemd.require_systemd()
    with app_lock(app, paths):
        step = _restore_parts(app, folder, paths)
        progress(step)
        # re-render the env file from the restored secrets and start the app, health-checked
        result = engine.deploy(app, paths=paths, progress=progress, lock=False)
        result.steps.insert(0, step)
        return result


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
        for secret in sorted((folder / "secrets").glob("*")):
            from ripdep.secret import Secret, write_secret

            write_secret(paths.secrets(app), secret.name, Secret(secret.read_text()))
        changes.append(Change(f"secrets:{app}", Action.RESTORE, f"restore secrets from {folder.name}"))
        return Step(f"restore:{app}", changes, f"from {folder}")


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
