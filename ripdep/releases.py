"""Releases: immutable code trees, the record of each deploy that changed code or manifest, and the
`current` link the app runs from (docs/releases.md).

    /srv/ripdep/NAME                     -> NAME.releases/TREE (a link: the unit runs from it)
    /srv/ripdep/NAME.releases/TREE/      one code tree, root's, group NAME, never changed once built
    /var/lib/ripdep/releases/NAME/ID.toml            a release: its tree, code and manifest hashes,
                                                     the manifest itself, outcome, pre-release backup
    /var/lib/ripdep/releases/NAME/trees/TREE.json    the tree's files and their sha256 (for hard links)
    /var/lib/ripdep/releases/NAME/source-index.json  size/mtime/inode/ctime -> sha256 of the source's
                                                     files: a rerun hashes only what changed

App names have no dots, so NAME.releases can never be another app's folder. A release that changes
only the manifest reuses its tree; a new tree hard-links every file whose content it shares with the
live tree, so a one-file change in a large app copies one file. IDs sort by time.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ripdep.errors import ApplyFailed

INDEX = "source-index.json"
RECORD_MARKER = "# managed by ripdep: release of app {app}\n"
OUTCOMES = ("pending", "live", "superseded", "failed", "rolled_back")


@dataclass(frozen=True)
class Scan:
    """The source folder as content: its digest, and what every regular file hashed to."""

    digest: str
    index: dict = field(repr=False)  # rel -> [size, mtime_ns, ino, ctime_ns, sha256]
    entries: tuple = field(repr=False)  # (rel, kind "F"|"X"|"D"|"L", sha256 or link target)


@dataclass(frozen=True)
class Release:
    id: str
    tree: str
    code_hash: str
    manifest_hash: str
    created: str
    manifest: str = field(default="", repr=False)  # the manifest text that produced it
    outcome: str = "pending"
    reason: str = ""  # why it failed or was rolled back
    backup: str = ""  # the verified backup taken before its release phase
    release_ran: bool = False  # its release command succeeded (never run twice)
    changed: str = ""  # "code", "manifest" or "code, manifest"

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "manifest"}


def scan(source: Path, previous: dict) -> Scan:
    """Hash the source, re-reading only files whose size, mtime, inode or ctime changed since
    `previous` (the last scan's index). Every file must be readable by every user and every folder
    listable (code.open_public / check_public_dir), whether it is hashed again or not."""
    from ripdep.resources.code import check_public_dir, open_public, walk

    index: dict = {}
    entries = []
    total = hashlib.sha256()
    for rel, st in walk(source):
        key = str(rel)
        if stat.S_ISLNK(st.st_mode):
            entry = (key, "L", os.readlink(source / rel))
        elif stat.S_ISDIR(st.st_mode):
            check_public_dir(st, rel)
            entry = (key, "D", "")
        elif stat.S_ISREG(st.st_mode):
            stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
            old = previous.get(key)
            if old is not None and old[:4] == stamp and st.st_mode & 0o004:
                digest = old[4]
            else:
                digest = hash_file(open_public(source / rel, rel))
            index[key] = [*stamp, digest]
            entry = (key, "X" if st.st_mode & 0o111 else "F", digest)
        else:
            continue  # sockets, FIFOs, devices: not code, never copied
        entries.append(entry)
        total.update("\0".join(entry).encode() + b"\n")
    return Scan(total.hexdigest(), index, tuple(entries))


def hash_file(fd: int) -> str:
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stamp() -> str:
    """UTC now, to the microsecond: IDs sort by time, and two deploys in one second differ."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def index_bytes(scanned: Scan) -> bytes:
    return json.dumps(scanned.index, separators=(",", ":")).encode()


def write_record_op(paths, app: str, release: Release):
    from ripdep.resources import WriteFile

    folder = paths.release_records(app)
    return WriteFile(folder / f"{release.id}.toml", render_record(app, release), 0o600,
                     dirs=((folder.parent, 0o700), (folder, 0o700)))


def write_record(host, paths, app: str, release: Release) -> None:
    """The record written now, outside a plan (an outcome known only after the switch)."""
    op = write_record_op(paths, app, release)
    host.write_file(op.path, op.content, mode=op.mode)


def tree_name(stamp: str, code_hash: str) -> str:
    return f"{stamp}-{code_hash[:12]}"


def release_id(stamp: str, code_hash: str, manifest_hash: str) -> str:
    return f"{stamp}-{hashlib.sha256(f'{code_hash}:{manifest_hash}'.encode()).hexdigest()[:12]}"


def manifest_hash(spec) -> str:
    """What the manifest says, not how it is written (comments, order of keys of a table)."""
    from dataclasses import replace

    return hashlib.sha256(repr(replace(spec, manifest_path=Path("/"))).encode()).hexdigest()


# --- records ----------------------------------------------------------------------------------

def render_record(app: str, release: Release) -> bytes:
    import tomli_w

    return (RECORD_MARKER.format(app=app) + tomli_w.dumps(asdict(release))).encode()


def parse_record(text: str) -> Release | None:
    import tomllib

    try:
        data = tomllib.loads(text)
        return Release(**{k: v for k, v in data.items() if k in Release.__dataclass_fields__})
    except (ValueError, TypeError):
        return None


def read_records(host, paths, app: str) -> list[Release]:
    """Every release of the app, oldest first."""
    folder = paths.release_records(app)
    out = []
    for name in sorted(host.list_dir(folder) or ()):
        if name.endswith(".toml"):
            content = host.read_file(folder / name).content
            release = parse_record(content.decode(errors="replace")) if content else None
            if release is not None:
                out.append(release)
    return out


def previous_good(records: list[Release], live_id: str) -> Release | None:
    """The release that served before the live one (the newest older one that went live)."""
    older = [r for r in records if r.id < live_id and r.outcome in ("live", "superseded")]
    return older[-1] if older else None


def to_prune(records: list[Release], keep: int, live_id: str) -> list[Release]:
    """Records beyond the newest `keep`, never the live one or the one before it."""
    protect = {live_id}
    before = previous_good(records, live_id)
    if before is not None:
        protect.add(before.id)
    extra = len(records) - keep
    return [r for r in records if r.id not in protect][:max(0, extra)]


# --- the host side: building a tree and switching to it ------------------------------------

def tree_files(paths, app: str, tree: str) -> dict:
    try:
        return json.loads((paths.release_records(app) / "trees" / f"{tree}.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def install_tree(paths, app: str, tree: str, source: Path, scanned: Scan, link_from: str | None) -> None:
    """Build NAME.releases/TREE from the source: a file the live tree has with the same content is
    hard-linked from it, every other one copied (and hashed again while copied: a file changed since
    the scan fails the run, which a rerun resolves). Built under a temporary name, renamed at the end."""
    import grp
    import shutil

    from ripdep.host import fs
    from ripdep.resources.code import MARKER_FILE, marker_text, open_public

    root = paths.releases_root(app)
    final = root / tree
    if final.is_dir():
        return  # built by an earlier run that stopped before switching
    fs.ensure_dir(root, mode=0o711)
    gid = grp.getgrnam(app).gr_gid
    tmp = root / f".{tree}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    old = root / link_from if link_from else None
    old_files = tree_files(paths, app, link_from) if link_from else {}
    os.mkdir(tmp, 0o750)
    os.chown(tmp, 0, gid)
    files = {}
    for rel, kind, value in scanned.entries:
        dst = tmp / rel
        if kind == "L":
            os.symlink(value, dst)
            os.lchown(dst, 0, gid)
        elif kind == "D":
            os.mkdir(dst, 0o750)
            os.chown(dst, 0, gid)
            os.chmod(dst, 0o750)
        else:
            files[rel] = f"{kind}{value}"
            if old is not None and old_files.get(rel) == f"{kind}{value}":
                os.link(old / rel, dst)
                continue
            h = hashlib.sha256()
            with os.fdopen(open_public(source / rel, Path(rel)), "rb") as fin, open(dst, "xb") as fout:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    h.update(chunk)
                    fout.write(chunk)
            if h.hexdigest() != value:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ApplyFailed(f"{source / rel} changed while it was being deployed",
                                  hint="run the deploy again once the source folder is settled")
            os.chown(dst, 0, gid)
            os.chmod(dst, 0o750 if kind == "X" else 0o640)
    fs.write_file(tmp / MARKER_FILE, marker_text(app, scanned.digest).encode(), mode=0o640, gid=gid)
    records = paths.release_records(app)
    fs.ensure_dir(records.parent, mode=0o700)
    fs.ensure_dir(records, mode=0o700)
    fs.ensure_dir(records / "trees", mode=0o700)
    fs.write_file(records / "trees" / f"{tree}.json", json.dumps(files).encode(), mode=0o600)
    os.rename(tmp, final)
    fs.fsync_dir(root)


def switch(paths, app: str, tree: str) -> None:
    """Point /srv/ripdep/NAME at the tree with one rename (a reader sees the old tree or the new
    one). A folder there is the layout before releases: it is moved aside and removed."""
    import shutil

    from ripdep.host import fs

    live = paths.code(app)
    target = f"{paths.releases_root(app).name}/{tree}"
    tmp = live.parent / f".{app}.link"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    legacy = None
    if live.is_dir() and not live.is_symlink():
        legacy = live.parent / f".{app}.legacy"
        shutil.rmtree(legacy, ignore_errors=True)
        os.rename(live, legacy)
    os.rename(tmp, live)
    fs.fsync_dir(live.parent)
    if legacy is not None:
        shutil.rmtree(legacy, ignore_errors=True)


def remove_trees(paths, app: str, trees: list[str]) -> None:
    import shutil

    for tree in trees:
        shutil.rmtree(paths.releases_root(app) / tree, ignore_errors=True)
        try:
            os.unlink(paths.release_records(app) / "trees" / f"{tree}.json")
        except FileNotFoundError:
            pass
