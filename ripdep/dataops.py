"""Data safety: backup, restore and destroy of one app, each under the app's lock."""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ripdep import backup, engine, names
from ripdep.errors import ApplyFailed, BackupInvalid, BadInput, PreconditionFailed, RipdepError, UnknownApp
from ripdep.host import caddy, fs, systemd, users
from ripdep.host.postgres import Postgres
from ripdep.hostconfig import load_host_config
from ripdep.lock import app_lock
from ripdep.ops import require_app
from ripdep.paths import PATHS, Paths
from ripdep.render import MARKER
from ripdep.resources import Change, Step, database, service
from ripdep.resources.file import has_marker
from ripdep.resources.user import gecos
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
        info = backup.verify(folder, app, progress)
        if info.verified and host.s3_bucket:
            from ripdep import s3  # boto3 only when off-host copies are configured

            progress(f"backup {app} ... uploading to s3://{host.s3_bucket}")
            info.remote = s3.upload(folder, app, host)
    except RipdepError as e:
        backup.record_last_run(app, False, None, e.message, paths)
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

def _safe_members(tar: tarfile.TarFile):
    """Only what ripdep's own state.tar holds: files, folders and links below state/, nothing that
    could point outside the folder it is unpacked into."""
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or p.parts[0] != "state":
            raise BackupInvalid(f"state.tar holds an unsafe path: {m.name!r}")
        if m.issym() or m.islnk():
            target = PurePosixPath(m.linkname)
            if target.is_absolute() or ".." in target.parts:
                raise BackupInvalid(f"state.tar holds a link out of the state dir: {m.name!r}")
        elif not (m.isfile() or m.isdir()):
            raise BackupInvalid(f"state.tar holds a special file: {m.name!r}")
        yield m


def _restore_state_dir(tar_path: Path, target: Path, uid: int, gid: int) -> None:
    """Unpack beside the live folder, give everything to the app's current uid, swap by rename."""
    staging = target.parent / f".{target.name}.restore"
    shutil.rmtree(staging, ignore_errors=True)
    os.mkdir(staging, 0o700)
    with tarfile.open(tar_path) as tar:
        tar.extractall(staging, members=list(_safe_members(tar)), numeric_owner=True)
    unpacked = staging / "state"
    if not unpacked.is_dir():
        os.mkdir(unpacked, 0o750)
    for dirpath, dirnames, filenames in os.walk(unpacked):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
    os.chown(unpacked, uid, gid)
    os.chmod(unpacked, 0o750)
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.rename(target, old)
    os.rename(unpacked, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _restore_database(app: str, dump: Path, locale: str | None) -> None:
    """Restore into a new database owned by the app's role (with the manifest's locale), then swap
    it in by rename: if the restore fails, the live database is untouched."""
    from psycopg import sql

    staging = f"ripdep-restore-{app}"
    pg = Postgres()
    try:
        pg.drop_database(staging)
        pg.execute(database.create_database_sql(staging, app, locale, template0=True))
        error = backup.pg_restore(dump, staging, role=app)
        if error:
            pg.drop_database(staging)
            raise ApplyFailed(f"restoring db.dump into a new database failed; database {app} was not touched",
                              details=error.splitlines()[-10:])
        pg.drop_database(app)
        pg.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(staging), sql.Identifier(app)))
        for statement in database._database_sql(app, create=False):
            pg.execute(statement)
    finally:
        pg.close()


def restore_app(app: str, ref: str, yes: bool, paths: Paths = PATHS, progress=lambda s: None) -> engine.RunResult:
    engine.require_root()
    require_app(app, paths)
    folder = backup.find(app, ref, paths)
    if not yes:
        raise BadInput(f"restore replaces {app}'s database, state dir and secrets with backup {folder.name}",
                       hint=f"add --yes: ripdep restore {app} {ref} --yes")
    problems = backup.check_sums(folder)
    if problems:
        raise BackupInvalid(f"backup {folder.name} fails its checksums; nothing was changed", details=problems)
    systemd.require_systemd()
    with app_lock(app, paths):
        spec = load_manifest(app, paths.manifest(app))
        user = users.read_user(app)
        if user is None:
            raise PreconditionFailed(f"user {app} does not exist", hint=f"deploy the app first: ripdep deploy {app}")
        unit = paths.unit_name(app)
        changes = [Change(f"service:{unit}", "stop", f"stop {unit}")]
        systemd.systemctl("stop", unit)
        if spec.database and (folder / "db.dump").exists():
            _restore_database(app, folder / "db.dump", spec.database_locale)
            changes.append(Change(f"database:{app}", "restore", f"restore database {app} from {folder.name}"))
        _restore_state_dir(folder / "state.tar", paths.app_state_dir(app), user.uid, user.gid)
        changes.append(Change(f"state-dir:{app}", "restore", f"restore {paths.app_state_dir(app)} (owner {app})"))
        for secret in sorted((folder / "secrets").glob("*")):
            from ripdep.secret import Secret, write_secret

            write_secret(paths.secrets(app), secret.name, Secret(secret.read_text()))
        changes.append(Change(f"secrets:{app}", "restore", f"restore secrets from {folder.name}"))
        step = Step(f"restore:{app}", changes, f"from {folder}")
        progress(step)
        # re-render the env file from the restored secrets and start the app, health-checked
        result = engine.deploy(app, paths=paths, progress=progress, lock=False)
        result.steps.insert(0, step)
        return result


# --- destroy ----------------------------------------------------------------------------------

def fresh_verified_backup(app: str, max_age: int, paths: Paths = PATHS) -> backup.BackupInfo | None:
    good = [b for b in backup.local_backups(app, paths) if b.verified and b.age_seconds <= max_age]
    return good[-1] if good else None


def destroy_app(app: str, yes: bool, take_backup: bool, paths: Paths = PATHS, progress=lambda s: None) -> engine.RunResult:
    engine.require_root()
    names.check_app_name(app)
    if not yes:
        raise BadInput(f"destroy removes every resource of {app}; its backups are kept",
                       hint=f"add --yes (and --backup to take a verified backup first): ripdep destroy {app} --yes")
    if not paths.manifest(app).exists() and not paths.state(app).exists():
        raise UnknownApp(f"app {app!r} is not managed by ripdep")
    systemd.require_systemd()
    host = load_host_config(paths)
    with app_lock(app, paths):
        if take_backup:
            spec = load_manifest(app, paths.manifest(app))
            _backup_locked(spec, host, paths, lambda msg: None)
        kept = fresh_verified_backup(app, host.destroy_backup_max_age, paths)
        if kept is None:
            raise PreconditionFailed(
                f"refusing to destroy {app}: no verified backup younger than {host.destroy_backup_max_age} s",
                hint=f"take one now: ripdep destroy {app} --yes --backup (or ripdep backup {app} first)")
        t = engine.RunResult(app, False, url=None)
        for step in _remove_all(app, paths):
            progress(step)
            t.steps.append(step)
        t.steps.append(Step(f"backups:{app}", [], f"kept in {paths.backups(app)} (newest verified: {kept.name})"))
        progress(t.steps[-1])
        return t


def _marked(path: Path, app: str) -> bool:
    return has_marker(fs.read_file(path).content, MARKER.format(app=app))


def _remove_all(app: str, paths: Paths):
    """Each resource, only if it is ripdep's (markers), in an order that keeps others serving."""
    unit = paths.unit_name(app)
    # scheduled backups first: a timer must not fire into a half-removed app
    timer, backup_service = paths.backup_unit_name(app, "timer"), paths.backup_unit_name(app)
    changes = []
    for name in (timer, backup_service):
        if (paths.units / name).exists() and _marked(paths.units / name, app):
            systemd.run_systemctl_quiet("disable", "--now", name)
            fs.remove_file(paths.units / name)
            changes.append(Change(f"unit:{name}", "remove", f"remove {name}"))
    yield Step(f"backup-timer:{app}", changes)

    snippets = [p for p in (paths.path_snippet(app), paths.host_snippet(app)) if _marked(p, app)]
    if snippets:
        caddy.validate({p: None for p in snippets}, paths)
        for p in snippets:
            fs.remove_file(p)
        caddy.reload(paths)
    yield Step(f"route:{app}", [Change(f"route:{app}", "remove", f"remove {p}") for p in snippets])

    changes = []
    if _marked(paths.unit(app), app):
        systemd.run_systemctl_quiet("stop", unit)
        service.disable(paths, app)
        fs.remove_file(paths.unit(app))
        systemd.daemon_reload()
        systemd.run_systemctl_quiet("reset-failed", unit)
        changes.append(Change(f"unit:{unit}", "remove", f"stop and remove {unit}"))
    yield Step(f"unit:{unit}", changes)

    changes = []
    if _marked(paths.env_file(app), app):
        fs.remove_file(paths.env_file(app))
        changes.append(Change(f"env:{app}", "remove", f"remove {paths.env_file(app)}"))
    if paths.secrets(app).is_dir():
        shutil.rmtree(paths.secrets(app))
        changes.append(Change(f"secrets:{app}", "remove", f"remove {paths.secrets(app)}"))
    yield Step(f"env:{app}", changes)

    pg = Postgres()
    try:
        role, db = pg.read_app(app)
        changes = []
        if db is not None and (db.comment == database.marker(app) or (db.owner == app and role
                                                                    and role.comment == database.marker(app))):
            pg.drop_database(app)
            changes.append(Change(f"database:{app}", "remove", f"drop database {app}"))
        if role is not None and role.comment == database.marker(app):
            pg.drop_role(app)
            changes.append(Change(f"role:{app}", "remove", f"drop role {app}"))
    finally:
        pg.close()
    yield Step(f"database:{app}", changes)

    changes = []
    user = users.read_user(app)
    if user is not None and user.gecos == gecos(app):
        users.delete_user(app)
        changes.append(Change(f"user:{app}", "remove", f"remove user and group {app}"))
    for folder, rid in ((paths.app_state_dir(app), "state-dir"), (paths.code(app), "code")):
        if folder.exists():
            shutil.rmtree(folder)
            changes.append(Change(f"{rid}:{app}", "remove", f"remove {folder}"))
    yield Step(f"user:{app}", changes)

    changes = []
    for path, rid in ((paths.state(app), "state"), (paths.manifest(app), "manifest")):
        if fs.remove_file(path):
            changes.append(Change(f"{rid}:{app}", "remove", f"remove {path}"))
    yield Step(f"manifest:{app}", changes)
