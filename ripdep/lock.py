"""Locks: one per app for a whole run (a second run gets EXIT_LOCKED at once), and a short host-wide
lock around shared decisions such as port allocation. flock(2): released by the kernel when the
process dies, so a killed run never leaves a stale lock."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from ripdep.errors import LockHeld
from ripdep.host import fs
from ripdep.paths import PATHS, Paths


def _open(path: Path) -> int:
    # /run/ripdep also holds the apps' proxy sockets, which Caddy must reach; the locks stay root's
    fs.ensure_dir(path.parent.parent, mode=0o755)
    fs.ensure_dir(path.parent, mode=0o700)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def app_lock(app: str, paths: Paths = PATHS, wait: float = 0):
    """wait > 0: keep trying that many seconds (scheduled backups queue behind a deploy)."""
    fd = _open(paths.locks / f"{app}.lock")
    try:
        _acquire(fd, wait, f"another ripdep run is working on app {app}")
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, wait: float, message: str) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockHeld(message, hint="wait for it to finish and run again") from None
            time.sleep(0.02)


@contextmanager
def host_lock(paths: Paths = PATHS, timeout: float = 60, name: str = ".host.lock"):
    fd = _open(paths.locks / name)
    try:
        _acquire(fd, timeout, f"the host-wide ripdep lock {name} is held for too long")
        yield
    finally:
        os.close(fd)


def scratch_lock(paths: Paths = PATHS):
    """Around every use of PostgreSQL's scratch database (backup verification, a restore's staging):
    there is one, so verifications of different apps queue (a big one may take a while)."""
    return host_lock(paths, timeout=3600, name=".scratch.lock")


_held: list[int] = []  # port reservations of this run: the kernel releases them when it ends


def reserved_ports(paths: Paths = PATHS) -> set[int]:
    """Ports a running deploy has chosen but not yet recorded: port-N.lock files it holds a flock on."""
    found = set()
    for path in paths.locks.glob("port-*.lock"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found.add(int(path.stem.removeprefix("port-")))
        finally:
            os.close(fd)
    return found


def reserve_port(paths: Paths, port: int) -> None:
    fd = _open(paths.locks / f"port-{port}.lock")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held.append(fd)
