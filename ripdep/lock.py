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
    fs.ensure_dir(path.parent.parent, mode=0o700)
    fs.ensure_dir(path.parent, mode=0o700)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def app_lock(app: str, paths: Paths = PATHS):
    fd = _open(paths.locks / f"{app}.lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"another ripdep run is working on app {app}",
                           hint="wait for it to finish and run again") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def host_lock(paths: Paths = PATHS, timeout: float = 60):
    fd = _open(paths.locks / ".host.lock")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockHeld("the host-wide ripdep lock is held for too long") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
