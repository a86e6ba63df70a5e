"""Per-app backups: /var/backups/ripdep/APP/<UTC time>/, root-only, verified right after they are
taken, pruned to the last N verified ones, optionally copied to S3.

A backup folder holds db.dump (pg_dump custom format), state.tar (the app's state dir), manifest.toml,
secrets/ (0600), backup.toml (facts) and SHA256SUMS over all of them. A folder is built as
.NAME.partial and renamed when complete, so a crash never leaves something that looks like a backup.

Everything in db.dump and state.tar is app-controlled, so it is handled with the app's privileges
only: pg_dump and tar run as the app's user; a restore (of a verification or of `ripdep restore`)
is done by the app's own role into a scratch database it owns (code in a dump runs as the role that
restores it: a CHECK constraint calling an app function must not run as a superuser), and state.tar
is unpacked by tar running as the app's user. Verification is a rehearsal of restore with the same
code (`check_contents`, `restore_database`, `stage_state`); VERIFIED.toml records its verdict.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import time
import tomllib
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ripdep import __version__, names
from ripdep.errors import BackupInvalid, BadInput, RipdepError
from ripdep.host import fs, users
from ripdep.host.postgres import SCRATCH_DB, SOCKET_DIR, Postgres, pg_tool, run_as
from ripdep.hostconfig import HostConfig
from ripdep.paths import PATHS, Paths
from ripdep.spec import LOCALE, AppSpec

SUMS = "SHA256SUMS"
VERIFIED = "VERIFIED.toml"
LAST_RUN = "last-run.toml"
TIME_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass
class BackupInfo:
    app: str
    name: str  # the folder name: its UTC time
    path: str
    size_bytes: int
    verified: bool | None  # None = never verified (interrupted)
    verify_error: str | None = None
    verify_seconds: float | None = None
    remote: str | None = None  # s3:// URL of the off-host copy

    @property
    def age_seconds(self) -> int:
        taken = datetime.strptime(self.name[:16], TIME_FORMAT).replace(tzinfo=timezone.utc)
        return int((datetime.now(timezone.utc) - taken).total_seconds())

    def as_dict(self) -> dict:
        return {**asdict(self), "age_seconds": self.age_seconds}


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    """Every file the checksums cover, relative, sorted (VERIFIED.toml is written after them)."""
    out = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            rel = Path(dirpath, name).relative_to(folder)
            if str(rel) not in (SUMS, VERIFIED):
                out.append(rel)
    return sorted(out)


def write_sums(folder: Path, known: dict[str, str]) -> None:
    lines = [f"{known.get(str(rel)) or _hash_file(folder / rel)}  {rel}\n" for rel in _files(folder)]
    fs.write_file(folder / SUMS, "".join(lines).encode(), mode=0o600)


def check_sums(folder: Path) -> list[str]:
    """Problems with the folder's checksums; [] means every file is intact and none is missing or extra."""
    try:
        lines = (folder / SUMS).read_text().splitlines()
    except FileNotFoundError:
        return [f"{SUMS} is missing"]
    listed = {}
    for line in lines:
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    problems = [f"{rel}: checksum mismatch" for rel, digest in listed.items()
                if not (folder / rel).is_file() or _hash_file(folder / rel) != digest]
    problems += [f"{rel}: not in {SUMS}" for rel in map(str, _files(folder)) if rel not in listed]
    return problems


def restore_argv(app: str) -> list[str]:
    """pg_restore connected as the app's role (peer auth: run as the app's user) into the scratch
    database it owns. Not `--role` under a superuser session: code in the dump could RESET ROLE."""
    return [pg_tool("pg_restore"), "--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges",
            "--no-publications", "--no-subscriptions", "--no-security-labels", "-h", SOCKET_DIR, "-U", app,
            "-d", SCRATCH_DB]


def restore_database(dump: Path, app: str, locale: str | None, pg: Postgres) -> str | None:
    """Restore db.dump into a fresh scratch database owned by the app's role, as that role; returns
    the error, or None (the scratch database then holds the data). Hold lock.scratch_lock around it
    and what follows. The role must come out exactly as it went in."""
    before, _ = pg.read_app(app)
    if before is None:
        return f"role {app} does not exist: deploy the app first"
    pg.create_scratch_database(app, locale)
    with open(dump, "rb") as f:
        proc = run_as(app, restore_argv(app), stdin=f)
    error = None
    if proc.returncode != 0:
        error = proc.stderr.decode(errors="replace").strip()[-2000:] or f"pg_restore exited {proc.returncode}"
        if "no pg_hba.conf entry" in error:
            error += f" (this host's pg_hba.conf predates the {SCRATCH_DB} rule: run ripdep init)"
    after, _ = pg.read_app(app)
    if after != before:
        error = f"restoring changed role {app} ({', '.join(after.drift()) if after else 'dropped'}): refused"
    return error


# zlib level 1: about as small as pg_dump's default level for typical data, at half the CPU time
# (measured: 12.0 MB vs 11.2 MB, 0.41 s vs 0.71 s for a 100 MB database); see docs/benchmarks.md
DUMP_COMPRESSION = "-Z1"


def _dump(app: str, target: Path) -> str:
    """pg_dump -Fc as the app's own role into target (opened by root, written through pg_dump's
    stdout); returns the hash."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        proc = run_as(app, [pg_tool("pg_dump"), "-Fc", DUMP_COMPRESSION, "-h", SOCKET_DIR, "-U", app, "-d", app],
                      stdout=out)
        out.flush()
        os.fsync(out.fileno())
    if proc.returncode != 0:
        raise BackupInvalid(f"pg_dump of database {app} failed: {proc.stderr.decode(errors='replace').strip()}")
    return _hash_file(target)


def _tar_state(app: str, state_dir: Path, target: Path) -> None:
    """The state dir as state/... in a tar written by tar running as the app's user: the app is live
    and may swap a folder for a link while it is read, so it is read with the app's privileges only."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        if os.path.isdir(state_dir) and not os.path.islink(state_dir):
            # --sparse: a sparse file the app made costs the backup what it costs the disk, not its size
            proc = run_as(app, ["tar", "--create", "--file=-", "--sparse", "--numeric-owner",
                                 f"--directory={state_dir.parent}",
                                 f"--transform=s,^{app},state,S", app], stdout=out)
            # 1: a file changed while it was read (a live app): the copy is still a consistent tar
            if proc.returncode not in (0, 1):
                raise BackupInvalid(f"tar of {state_dir} as user {app} failed: "
                                    f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
        else:
            with tarfile.open(fileobj=out, mode="w"):
                pass
        out.flush()
        os.fsync(out.fileno())


def check_state_tar(tar_path: Path) -> list[str]:
    """state.tar's member names: only below state/, nothing absolute, no '..', no device files, hard
    links only to members. (Link targets and contents are the app's: tar runs as the app to unpack.)"""
    def unsafe(name: str) -> bool:
        p = PurePosixPath(name)
        return p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] != "state"

    try:
        with tarfile.open(tar_path) as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError) as e:
        return [f"state.tar cannot be read: {e}"]
    problems = []
    for m in members:
        if unsafe(m.name):
            problems.append(f"state.tar holds an unsafe path: {m.name!r}")
        elif m.islnk() and unsafe(m.linkname):
            problems.append(f"state.tar holds a hard link out of the state dir: {m.name!r}")
        elif m.ischr() or m.isblk():
            problems.append(f"state.tar holds a device file: {m.name!r}")
    return problems


def stage_state(tar_path: Path, app: str, paths: Paths, purpose: str) -> Path:
    """Unpack state.tar beside the app's live state dir (in .APP.PURPOSE/state), by tar running as the
    app's user, and return the unpacked folder (owned by the app, 0750). Raises BackupInvalid."""
    user = users.read_user(app)
    if user is None:
        raise BackupInvalid(f"user {app} does not exist: deploy the app first")
    staging = paths.apps_state_root / f".{app}.{purpose}"
    shutil.rmtree(staging, ignore_errors=True)
    os.mkdir(staging, 0o700)
    os.chown(staging, user.uid, user.gid)
    with open(tar_path, "rb") as f:
        proc = run_as(app, ["tar", "--extract", "--file=-", f"--directory={staging}", "--no-same-owner",
                             "--preserve-permissions", "--delay-directory-restore"], stdin=f)
    unpacked = staging / "state"
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BackupInvalid(f"state.tar does not unpack as user {app}: "
                            f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
    if not os.path.lexists(unpacked):
        os.mkdir(unpacked, 0o750)
    if not stat.S_ISDIR(os.lstat(unpacked).st_mode):
        shutil.rmtree(staging, ignore_errors=True)
        raise BackupInvalid("state.tar's state/ is not a folder")
    os.chown(unpacked, user.uid, user.gid, follow_symlinks=False)
    os.chmod(unpacked, 0o750)
    return unpacked


def check_folder(folder: Path, owner: int = 0) -> list[str]:
    """Whether the folder can be trusted to stay as checked until it is used: a backup given by path
    may have been copied from another host by any means. Every entry must be owned by root, writable
    by no one else, and a plain file or folder (no links, FIFOs or devices): otherwise another user
    could change a file between its checksum and its restore."""
    try:
        if os.path.islink(folder):
            return [f"{folder}: is a symbolic link"]
        entries = [folder]
        for dirpath, dirnames, filenames in os.walk(folder, onerror=_raise):
            entries += [Path(dirpath, n) for n in dirnames + filenames]
        problems = []
        for path in entries:
            st = os.lstat(path)
            rel = str(path.relative_to(folder)) if path != folder else str(folder)
            if stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel}: is a symbolic link")
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                problems.append(f"{rel}: is not a regular file or folder")
            elif st.st_uid != owner:
                problems.append(f"{rel}: is owned by uid {st.st_uid}, not root (chown -R root:root it)")
            elif st.st_mode & 0o022:
                problems.append(f"{rel}: is writable by group or others (chmod -R go-w it)")
    except OSError as e:
        return [f"{folder} cannot be read: {e.strerror or e}"]
    return problems


def _raise(error: OSError) -> None:
    raise error


def check_contents(folder: Path, app: str, owner: int = 0) -> list[str]:
    """Everything restore checks before it touches anything, cheap enough for every destroy: who can
    write the folder, checksums, whose backup this is, its recorded facts, secret names and values,
    state.tar's member names. A backup may come from another host: all of it is untrusted input."""
    problems = check_folder(folder, owner)
    if problems:
        return problems
    problems = check_sums(folder)
    if problems:
        return problems
    try:
        facts = tomllib.loads((folder / "backup.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return [f"backup.toml cannot be read: {e}"]
    if facts.get("app") != app:
        problems.append(f"this is a backup of app {facts.get('app')!r}, not of {app!r}")
    locale = facts.get("database_locale") or ""
    if not isinstance(locale, str) or (locale and not LOCALE.fullmatch(locale)):
        problems.append(f"backup.toml: database_locale {locale!r} is not a locale name like C or en_US.UTF-8")
    if facts.get("database") is True and not (folder / "db.dump").is_file():
        problems.append("backup.toml says the app has a database, but db.dump is missing")
    for secret in sorted((folder / "secrets").iterdir()) if (folder / "secrets").is_dir() else []:
        try:
            names.check_env_key(secret.name, "secret file")
        except RipdepError as e:
            problems.append(e.message)
            continue
        problems += _secret_problems(secret)
    return problems + check_state_tar(folder / "state.tar")


def _secret_problems(path: Path) -> list[str]:
    """A secret's value must be one an environment can hold, as `ripdep secret set` requires."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [f"secret {path.name}: the value is not valid UTF-8"]
    if "\x00" in text:
        return [f"secret {path.name}: the value contains a NUL character"]
    if len(raw) > names.MAX_ENV_VALUE:
        return [f"secret {path.name}: the value is {len(raw)} bytes, more than {names.MAX_ENV_VALUE}"]
    return []


def check_manifest(folder: Path, app: str) -> AppSpec:
    """The backup's manifest, validated exactly as `deploy --manifest` validates a file, for a restore
    that creates the app from it. Its `source` must be absolute (ripdep installs manifests so): a
    relative one would name a folder beside the backup. Raises BackupInvalid naming the key."""
    from ripdep.spec import load_manifest

    path = folder / "manifest.toml"
    try:
        spec = load_manifest(app, path)
        source = tomllib.loads(path.read_text()).get("source", "")
        if not PurePosixPath(source).is_absolute():
            raise BadInput(f"manifest key 'source': {source!r} is relative; a backup's manifest names its "
                           "code by an absolute path", hint="restore it into an app that exists, or fix the manifest")
        untrusted_reach(spec)
    except RipdepError as e:
        raise BackupInvalid(f"the manifest in backup {folder.name} is refused: {e.message}; nothing was changed",
                            hint=e.hint, details=e.details) from None
    return spec


def untrusted_reach(spec: AppSpec) -> None:
    """A backup from elsewhere chooses its app's start command: it must not also choose what that
    command can reach. SSM names must be the app's own (its name as a path segment, the rule --like
    uses: the host's role reads every app's parameters), and no network.egress (a way out)."""
    app = spec.name
    names_used = [f"ssm:{s.ssm_name}" for s in spec.secrets.values() if s.kind == "ssm"] + \
        [f"ssm:{p}" for p in spec.secrets_from]
    for name in names_used:
        if f"/{app}/" not in name:
            raise BadInput(f"manifest key 'secrets': {name} is not one of app {app}'s SSM parameters (no /{app}/ "
                           "in its name): a restored backup may only fetch the app's own",
                           hint=f"deploy {app} from a manifest you reviewed first, then restore into it")
    if spec.egress:
        raise BadInput("manifest key 'network.egress': an app created from a backup gets no egress",
                       hint=f"deploy {app} from a manifest you reviewed first, then restore into it")


def _new_name(root: Path) -> str:
    name = datetime.now(timezone.utc).strftime(TIME_FORMAT)
    n = 1
    while (root / name).exists() or (root / f".{name}.partial").exists():
        n += 1
        name = f"{datetime.now(timezone.utc).strftime(TIME_FORMAT)}-{n}"
    return name


def take(spec: AppSpec, paths: Paths = PATHS, progress=lambda msg: None) -> Path:
    """Write a complete backup folder (not yet verified); returns its path. A failure (a full disk,
    pg_dump refused) removes the partial folder and raises BackupInvalid."""
    root = paths.backups(spec.name)
    fs.ensure_dir(paths.backups_root, mode=0o700)
    fs.ensure_dir(root, mode=0o700)
    name = _new_name(root)
    tmp = root / f".{name}.partial"
    os.mkdir(tmp, 0o700)
    try:
        _fill(spec, tmp, name, paths, progress)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise BackupInvalid(f"backup of {spec.name} could not be written: {e.strerror or e}",
                                hint=f"free space in {paths.backups_root} and run ripdep backup {spec.name} again",
                                details=[f"the partial folder {tmp} was removed"]) from None
        raise
    final = root / name
    os.rename(tmp, final)
    fs.fsync_dir(root)
    return final


def _fill(spec: AppSpec, tmp: Path, name: str, paths: Paths, progress) -> None:
    app = spec.name
    known: dict[str, str] = {}
    sizes: dict[str, int] = {}
    pg_version = locale = None
    if spec.database:
        progress(f"backup {app} ... pg_dump")
        known["db.dump"] = _dump(app, tmp / "db.dump")
        pg = Postgres()
        try:
            pg_version = pg.server_version()
            db = pg.read_app(app)[1]
            locale = db.collate if db else None  # what a restore recreates, whatever the manifest says then
        finally:
            pg.close()
    progress(f"backup {app} ... state dir")
    _tar_state(app, paths.app_state_dir(app), tmp / "state.tar")
    shutil.copyfile(paths.manifest(app), tmp / "manifest.toml")
    os.chmod(tmp / "manifest.toml", 0o600)
    os.mkdir(tmp / "secrets", 0o700)
    from ripdep.secret import read_store  # through the store's own checks: names, no links

    for key, value in read_store(paths.secrets(app)).items():
        fs.write_file(tmp / "secrets" / key, value.reveal().encode(), mode=0o600)
    for rel in _files(tmp):
        sizes[str(rel)] = (tmp / rel).stat().st_size
    import tomli_w

    facts = {"app": app, "time": name, "ripdep_version": __version__, "database": spec.database,
             "postgresql_version": pg_version or "", "database_locale": locale or "", "sizes": sizes,
             **live_facts(spec, paths)}
    fs.write_file(tmp / "backup.toml", tomli_w.dumps(facts).encode(), mode=0o600)
    write_sums(tmp, known)
    fs.fsync_dir(tmp)


def live_facts(spec: AppSpec, paths: Paths) -> dict:
    """What served while the backup was taken (nothing is stopped for it): the live release and the
    [processes] units that were running, so a restore can say what the data belonged to."""
    from ripdep.host.systemd import Bus
    from ripdep.state import read_state

    state = read_state(spec.name, paths)
    units = [u for n, p in spec.processes.items() for u in paths.process_unit_names(spec.name, n, p.count)]
    running = []
    if units:
        bus = Bus()
        try:
            running = [u for u in units if bus.active_state(u) == "active"]
        finally:
            bus.close()
    return {"release": state.release if state else "", "processes": running}


def backup_locale(folder: Path, spec: AppSpec) -> str | None:
    """The locale the backed-up database had (older backups did not record it: the manifest's)."""
    try:
        recorded = tomllib.loads((folder / "backup.toml").read_text()).get("database_locale")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        recorded = None
    return recorded or spec.database_locale


def verify(folder: Path, spec: AppSpec, paths: Paths = PATHS, progress=lambda msg: None) -> BackupInfo:
    """A rehearsal of restore with its own code: the same content checks, db.dump restored by the
    app's role into the scratch database, state.tar unpacked as the app's user; both then discarded.
    The verdict is recorded in VERIFIED.toml (outside the checksummed set)."""
    import tomli_w

    from ripdep.lock import scratch_lock

    app = spec.name
    t0 = time.monotonic()
    problems = check_contents(folder, app)
    if not problems:
        progress(f"backup {app} ... verifying by a rehearsal of its restore")
        try:
            staged = stage_state(folder / "state.tar", app, paths, "verify")
            shutil.rmtree(staged.parent)
        except BackupInvalid as e:
            problems.append(e.message)
    if not problems and (folder / "db.dump").exists():
        with scratch_lock(paths):
            pg = Postgres()
            try:
                error = restore_database(folder / "db.dump", app, backup_locale(folder, spec), pg)
                if error:
                    problems.append(f"db.dump does not restore: {error}")
            finally:
                try:
                    pg.drop_database(SCRATCH_DB)
                finally:
                    pg.close()
    seconds = round(time.monotonic() - t0, 3)
    result = {"ok": not problems, "seconds": seconds, "problems": problems,
              "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    fs.write_file(folder / VERIFIED, tomli_w.dumps(result).encode(), mode=0o600)
    return read_info(folder, app)


def read_info(folder: Path, app: str) -> BackupInfo:
    size = sum((folder / rel).stat().st_size for rel in _files(folder))
    try:
        verdict = tomllib.loads((folder / VERIFIED).read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        verdict = {}
    problems = verdict.get("problems") or []
    return BackupInfo(app, folder.name, str(folder), size, verdict.get("ok"),
                      "; ".join(problems) or None, verdict.get("seconds"))


def local_backups(app: str, paths: Paths = PATHS) -> list[BackupInfo]:
    """Complete backup folders, oldest first (partial ones from interrupted runs are skipped)."""
    root = paths.backups(app)
    if not root.is_dir():
        return []
    return [read_info(p, app) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def prune(app: str, keep: int, paths: Paths = PATHS) -> list[str]:
    """Keep the newest `keep` verified backups; an unverified one never counts toward them, and is
    removed once it is older than the oldest verified backup kept. Leftover partial folders go too."""
    backups = local_backups(app, paths)
    verified = [b for b in backups if b.verified]
    kept = verified[-keep:]
    oldest_kept = kept[0].name if kept else None
    removed = []
    for b in backups:
        if b in kept:
            continue
        if b.verified or (oldest_kept and b.name < oldest_kept):
            shutil.rmtree(b.path)
            removed.append(b.name)
    for partial in paths.backups(app).glob(".*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    return removed


def record_last_run(app: str, ok: bool, name: str | None, error: str | None, paths: Paths = PATHS) -> None:
    import tomli_w

    doc = {"ok": ok, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "backup": name or "",
           "error": error or ""}
    fs.ensure_dir(paths.backups_root, mode=0o700)
    fs.ensure_dir(paths.backups(app), mode=0o700)
    fs.write_file(paths.backups(app) / LAST_RUN, tomli_w.dumps(doc).encode(), mode=0o600)


def last_run(app: str, paths: Paths = PATHS) -> dict | None:
    try:
        return tomllib.loads((paths.backups(app) / LAST_RUN).read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return None


def find(app: str, ref: str, paths: Paths = PATHS) -> Path:
    """A backup given by its folder name or its path (whose backup.toml must name this app:
    check_contents refuses another app's)."""
    candidate = Path(ref) if "/" in ref else paths.backups(app) / ref
    if not (candidate / SUMS).is_file():
        raise BadInput(f"{candidate} is not a ripdep backup (no {SUMS})",
                       hint=f"ripdep backup list {app} shows the backups")
    return candidate


def keep_for(spec: AppSpec, host: HostConfig) -> int:
    return spec.backup.keep or host.backup_keep


def require_verified(info: BackupInfo) -> None:
    if not info.verified:
        raise BackupInvalid(f"backup {info.name} of {info.app} failed verification: {info.verify_error}",
                            hint="it is kept for inspection and never counts as a good backup",
                            details=[f"folder: {info.path}"])
