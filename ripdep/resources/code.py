"""code:NAME — the app's release: its code from the manifest's source folder, as an immutable tree
that /srv/ripdep/NAME links to (ripdep/releases.py has the layout).

Owned by root with group NAME and no write bit for anyone but root: the app can read and execute its
code, not change it; other apps cannot enter. "Changed" means the source's content hash or the
manifest differs from the live release's. A tree is built under a temporary name and renamed, and the
link is switched with one rename, so a crash leaves the old release or the new one live.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ripdep.context import Context
from ripdep.errors import BadInput, Conflict
from ripdep.render import MARKER
from ripdep.resources import (Action, Change, InstallTree, LiveRecord, Record, ReleasePhase, RemoveFile, RemoveTrees, Step,
                              SwitchCode, WriteFile)

MARKER_FILE = ".ripdep-managed"
SKIP = {".git", "__pycache__", MARKER_FILE}


def walk(source: Path):
    """(relative path as a string, lstat) of every entry below source, skipping VCS and caches: a
    folder's entries sorted by name, then each sub-folder (not a link to one) in that order, as
    os.walk with sorted names would. Plain strings and scandir: a rerun of an app of 10,000 files
    walks it every time (see releases.scan)."""
    import stat as stat_

    pending = [("", str(source))]
    while pending:
        rel_dir, full_dir = pending.pop()
        with os.scandir(full_dir) as it:
            names = sorted(e.name for e in it if e.name not in SKIP)
        below = []
        for name in names:
            rel = f"{rel_dir}{name}"
            st = os.lstat(f"{full_dir}/{name}")
            yield rel, st
            if stat_.S_ISDIR(st.st_mode):
                below.append((f"{rel}/", f"{full_dir}/{name}"))
        pending.extend(reversed(below))


def open_public(path: Path, rel: Path | str) -> int:
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


def check_public_dir(st: os.stat_result, rel: Path | str) -> None:
    if not st.st_mode & 0o005 == 0o005:
        raise BadInput(f"manifest key 'source': folder {rel} is not readable by every user "
                       f"(mode {st.st_mode & 0o7777:04o})", hint="chmod o+rx it, or keep it out of the source folder")


def marker_text(app: str, digest: str) -> str:
    return f"{MARKER.format(app=app)}\nsha256 {digest}\n"


def read_marker(host, live: Path) -> str | None:
    content = host.read_file(live / MARKER_FILE).content
    return content.decode(errors="replace") if content is not None else None


def plan(ctx: Context) -> Step:
    """The release the manifest asks for: the live one when neither the code (the source's content)
    nor the manifest changed, else a new one (its tree built now; the switch comes after the unit,
    the release phase and before the restart: engine.plan_all). A rollback (ctx.pin) asks for an
    existing release instead of the source."""
    from ripdep import releases

    source, host, paths, app = ctx.spec.source, ctx.host, ctx.paths, ctx.app
    rid = f"code:{app}"
    records = releases.read_records(host, paths, app)
    ctx.releases = records
    live = next((r for r in records if r.id == ctx.state.release), None)
    link = host.read_link(paths.code(app)) or ""
    live_tree = link.split("/", 1)[1] if link.startswith(f"{paths.releases_root(app).name}/") else None
    if live_tree is None and host.is_dir(paths.code(app)) and not host.is_link(paths.code(app)):
        if read_marker(host, paths.code(app)) is None:  # the layout before releases carries this marker
            raise Conflict(f"{paths.code(app)} exists and was not written by ripdep")
    if ctx.pin is None and ctx.state.pinned and not ctx.manifest_given and live is not None:
        ctx.pin = live  # a rollback chose it: only a deploy that installs a manifest moves on
    if ctx.pin is not None:
        ctx.code_hash = ctx.pin.code_hash
        if live is not None and live.id == ctx.pin.id and live_tree == ctx.pin.tree:
            pinned = " (pinned by a rollback: deploy --manifest to release the source)" if ctx.state.pinned else ""
            return Step(rid, [], f"release {live.id}{pinned}")
        ctx.pending = ctx.pin
        return Step(rid, [], f"back to release {ctx.pin.id}")
    if not host.is_dir(source):
        raise BadInput(f"manifest key 'source': {source} is not a folder")
    scanned = host.scan_source(source, paths.release_records(app) / releases.INDEX)
    ctx.code_hash, ctx.scan = scanned.digest, scanned
    wanted = releases.manifest_hash(ctx.spec)
    if live is not None and live.tree == live_tree and (live.code_hash, live.manifest_hash) == (scanned.digest, wanted):
        return Step(rid, [], f"release {live.id}, sha256 {scanned.digest[:12]}")
    # an earlier run that stopped before its switch left this release: finish it (its release
    # phase is not run twice)
    pending = next((r for r in reversed(records) if r.outcome == "pending" and r.code_hash == scanned.digest
                    and r.manifest_hash == wanted), None)
    stamp = releases.stamp()
    same_code = next((r for r in ([live] if live else []) + records[::-1]
                      if r.code_hash == scanned.digest and host.is_dir(paths.releases_root(app) / r.tree)), None)
    tree = pending.tree if pending else same_code.tree if same_code else releases.tree_name(stamp, scanned.digest)
    what = [w for w, same in (("code", live is not None and live.code_hash == scanned.digest),
                              ("manifest", live is not None and live.manifest_hash == wanted)) if not same]
    release = pending or releases.Release(
        id=releases.release_id(stamp, scanned.digest, wanted), tree=tree, code_hash=scanned.digest,
        manifest_hash=wanted, created=stamp, manifest=ctx.manifest_text, changed=", ".join(what) or "code, manifest")
    ctx.pending = release
    ops: list = []
    if not host.is_dir(paths.releases_root(app) / tree):
        ops.append(InstallTree(app, tree, source, scanned, live_tree))
    ops.append(releases.write_record_op(paths, app, release))
    ops.append(WriteFile(paths.release_records(app) / releases.INDEX, releases.index_bytes(scanned), 0o600,
                         dirs=((paths.release_records(app).parent, 0o700), (paths.release_records(app), 0o700))))
    detail = f"release {release.id}: {release.changed} changed" + ("" if ops[0].__class__ is InstallTree
                                                                     else f" (code tree {tree} kept)")
    return Step(rid, [Change(rid, Action.CREATE, detail, ops=tuple(ops))], f"sha256 {scanned.digest[:12]}")


def plan_switch(ctx: Context) -> Step:
    """After the units: the release phase (once per release), then the switch of the code link, the
    records (the new one live, the one before superseded) and the pruning of old releases."""
    from dataclasses import replace

    from ripdep import releases

    app, paths, release = ctx.app, ctx.paths, ctx.pending
    rid = f"release:{app}"
    if release is None:
        return Step(rid, [])
    changes = []
    if ctx.spec.release and not release.release_ran and ctx.pin is None:
        changes.append(Change(rid, Action.RUN, f"release phase of {release.id}: {' '.join(ctx.spec.release)}"[:200],
                              ops=(ReleasePhase(release.id),)))
    records = [r for r in ctx.releases if r.id != release.id] + [release]
    records.sort(key=lambda r: r.id)
    ops: list = [SwitchCode(app, release.tree)]
    for r in ctx.releases:
        if r.id != release.id and r.outcome == "live":
            ops.append(releases.write_record_op(paths, app, replace(r, outcome="superseded")))
    ops += [LiveRecord(release.id), Record.of(release=release.id, pinned=ctx.pin is not None)]
    keep = ctx.spec.releases.keep or ctx.settings.releases_keep
    gone = releases.to_prune(records, keep, release.id)
    kept_trees = {r.tree for r in records if r not in gone}
    ops += [RemoveFile(paths.release_records(app) / f"{r.id}.toml") for r in gone]
    trees = sorted({r.tree for r in gone} - kept_trees)
    if trees:
        ops.append(RemoveTrees(app, tuple(trees)))
    changes.append(Change(f"code:{app}", Action.SWITCH, f"switch {paths.code(app)} to release {release.id}",
                          ops=tuple(ops)))
    return Step(rid, changes, f"release {release.id}")
