"""code:NAME — the app's code copied from the manifest's source folder to /srv/ripdep/NAME.

Owned by root with group NAME and no write bit for anyone but root: the app can read and execute its
code, not change it; other apps cannot enter. "Changed" means the content hash of the source differs
from the one recorded in the copy's marker file. The copy is built beside the live folder and
swapped in by rename, so a crash leaves either the old or the new tree (and leftovers a rerun removes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from ripdep.context import Context
from ripdep.errors import BadInput, Conflict
from ripdep.host import fs
from ripdep.render import MARKER
from ripdep.resources import Action, Change, InstallCode, Step

MARKER_FILE = ".ripdep-managed"
SKIP = {".git", "__pycache__", MARKER_FILE}


def walk(source: Path):
    """(relative path, lstat) of every entry below source, sorted, skipping VCS and caches."""
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for name in sorted(dirnames + [f for f in filenames if f not in SKIP]):
            full = Path(dirpath) / name
            yield full.relative_to(source), os.lstat(full)


def open_public(path: Path, rel: Path) -> int:
    """A source file opened for reading only if any user on the host could read it: root copies the
    code, and a manifest's `source` must not hand the app a root-only file (say /var/cache/debconf).
    O_NOFOLLOW and the check on the open file: a file swapped for a link meanwhile is refused too.
    (A folder swapped for a link can only lead to files that pass the same test: readable by all.
    The source folder itself may be private, as a mkdtemp is: what it holds is what is checked.)"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise BadInput(f"manifest key 'source': cannot read {rel}: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o004:
        os.close(fd)
        raise BadInput(f"manifest key 'source': {rel} is not readable by every user (mode {st.st_mode & 0o7777:04o})",
                       hint="ripdep copies only code any user on the host could read: chmod o+r it, or keep it "
                            "out of the source folder (secrets belong in [secrets])")
    return fd


def check_public_dir(st: os.stat_result, rel: Path) -> None:
    if not st.st_mode & 0o005 == 0o005:
        raise BadInput(f"manifest key 'source': folder {rel} is not readable by every user "
                       f"(mode {st.st_mode & 0o7777:04o})", hint="chmod o+rx it, or keep it out of the source folder")


def hash_tree(source: Path) -> str:
    h = hashlib.sha256()
    for rel, st in walk(source):
        full = source / rel
        h.update(str(rel).encode() + b"\0")
        if stat.S_ISLNK(st.st_mode):
            h.update(b"L" + os.readlink(full).encode())
        elif stat.S_ISDIR(st.st_mode):
            check_public_dir(st, rel)
            h.update(b"D")
        elif stat.S_ISREG(st.st_mode):
            h.update(b"X" if st.st_mode & 0o111 else b"F")
            with os.fdopen(open_public(full, rel), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def marker_text(app: str, digest: str) -> str:
    return f"{MARKER.format(app=app)}\nsha256 {digest}\n"


def copy_tree(source: Path, dest: Path, gid: int, app: str, digest: str) -> None:
    os.mkdir(dest, 0o750)
    os.chown(dest, 0, gid)
    for rel, st in walk(source):
        src, dst = source / rel, dest / rel
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
            os.lchown(dst, 0, gid)
        elif stat.S_ISDIR(st.st_mode):
            os.mkdir(dst, 0o750)
            os.chown(dst, 0, gid)
            os.chmod(dst, 0o750)
        elif stat.S_ISREG(st.st_mode):
            with os.fdopen(open_public(src, rel), "rb") as fin, open(dst, "xb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            os.chown(dst, 0, gid)
            os.chmod(dst, 0o750 if st.st_mode & 0o111 else 0o640)
    fs.write_file(dest / MARKER_FILE, marker_text(app, digest).encode(), mode=0o640, gid=gid)


def install(paths, app: str, source: Path, digest: str) -> None:
    import grp

    root = paths.code_root
    live, new, old = root / app, root / f".{app}.new", root / f".{app}.old"
    fs.ensure_dir(root, mode=0o755)
    for leftover in (new, old):
        shutil.rmtree(leftover, ignore_errors=True)
    copy_tree(source, new, grp.getgrnam(app).gr_gid, app, digest)
    if live.exists():
        os.rename(live, old)
    os.rename(new, live)
    fs.fsync_dir(root)
    shutil.rmtree(old, ignore_errors=True)


def read_marker(host, live: Path) -> str | None:
    content = host.read_file(live / MARKER_FILE).content
    return content.decode(errors="replace") if content is not None else None


def diff_code(app: str, live_exists: bool, marker: str | None, digest: str) -> list[Change]:
    rid = f"code:{app}"
    if not live_exists:
        return [Change(rid, Action.CREATE, f"copy code to /srv/ripdep/{app}")]
    if marker is None or not marker.startswith(MARKER.format(app=app) + "\n"):
        raise Conflict(f"/srv/ripdep/{app} exists and was not written by ripdep")
    if marker != marker_text(app, digest):
        return [Change(rid, Action.UPDATE, f"copy changed code to /srv/ripdep/{app}")]
    return []


def plan(ctx: Context) -> Step:
    source, host = ctx.spec.source, ctx.host
    if not host.is_dir(source):
        raise BadInput(f"manifest key 'source': {source} is not a folder")
    digest = host.hash_tree(source)
    live = ctx.paths.code(ctx.app)
    changes = diff_code(ctx.app, host.is_dir(live), read_marker(host, live), digest)
    for c in changes:
        c.then(InstallCode(ctx.app, source, digest))
    ctx.code_hash = digest
    return Step(f"code:{ctx.app}", changes, f"sha256 {digest[:12]}")
