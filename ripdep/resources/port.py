"""port:NAME — the app's loopback port: allocated once under the host lock, then stable.

A new port is never one recorded for another app nor one any process listens on now.
"""

from __future__ import annotations

import fcntl
import os

from ripdep.context import Context
from ripdep.errors import PreconditionFailed
from ripdep.lock import host_lock
from ripdep.resources import Change, Step
from ripdep.state import all_states


def listeners() -> list[tuple[int, int]]:
    """(port, uid) of every listening TCP socket in the host's network namespace."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        found.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[7])))
        except FileNotFoundError:
            pass
    return found


def listening_ports() -> set[int]:
    return {p for p, _ in listeners()}


def check_answerer(probe, port: int, app: str) -> None:
    """An app with network.egress listens on the host's loopback, where another app could bind its
    port while it is down and answer its health checks: the answer counts only if every listener
    on that port is the app's own user (each app has its own uid)."""
    import pwd

    uid = pwd.getpwnam(app).pw_uid
    strangers = sorted({u for p, u in listeners() if p == port and u != uid})
    if strangers:
        probe.ok = False
        probe.error = f"port {port} is held by uid {strangers[0]}, not by app {app}'s user: the answer is refused"


def pick_port(low: int, high: int, taken: set[int]) -> int | None:
    return next((p for p in range(low, high + 1) if p not in taken), None)


_held: list[int] = []  # reservation fds of this run: the kernel releases them when it ends


def _reserved(paths) -> set[int]:
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


def _reserve(paths, port: int) -> None:
    fd = os.open(paths.locks / f"port-{port}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held.append(fd)


def plan(ctx: Context) -> Step:
    """A new port is chosen and reserved under the host lock (a flock on a file in /run, gone when
    the run ends) and recorded in ripdep's state only when applied: parallel deploys get distinct
    ports, and a refused deploy leaves no port behind."""
    rid = f"port:{ctx.app}"
    if ctx.state.port:
        ctx.port = ctx.state.port
        return Step(rid, [], f"127.0.0.1:{ctx.port}")
    with host_lock(ctx.paths):
        taken = {s.port for s in all_states(ctx.paths) if s.app != ctx.app and s.port} | listening_ports()
        port = pick_port(ctx.host.port_min, ctx.host.port_max, taken | _reserved(ctx.paths))
        if port is None:
            raise PreconditionFailed(f"no free port left in {ctx.host.port_min}-{ctx.host.port_max}",
                                     hint="widen port_min/port_max in /etc/ripdep/ripdep.toml")
        if not ctx.check:
            _reserve(ctx.paths, port)
    ctx.port = port
    return Step(rid, [Change(rid, "allocate", f"allocate 127.0.0.1:{port}", run=lambda: ctx.record(port=port))],
                f"127.0.0.1:{port}")
