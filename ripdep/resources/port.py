"""port:NAME — the app's loopback port: allocated once under the host lock, then stable.

A new port is never one recorded for another app nor one any process listens on now.
"""

from __future__ import annotations

from ripdep.context import Context
from ripdep.errors import PreconditionFailed
from ripdep.resources import Action, Change, Record, Step


def listeners(pid: int | None = None) -> list[tuple[int, int]]:
    """(port, uid) of every listening TCP socket in the host's network namespace, or in the one of
    process `pid` (an app's own namespace)."""
    found = []
    base = f"/proc/{pid}/net" if pid else "/proc/net"
    for table in (f"{base}/tcp", f"{base}/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        found.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[7])))
        except (FileNotFoundError, ProcessLookupError):  # the process is gone
            pass
    return found


def check_answerer(host, probe, port: int, app: str) -> None:
    """An app with network.egress listens on the host's loopback, where another app could bind its
    port while it is down and answer its health checks: the answer counts only if every listener
    on that port is the app's own user (each app has its own uid)."""
    user = host.read_user(app)
    uid = user.uid if user else -1
    strangers = sorted({u for p, u in host.listeners() if p == port and u != uid})
    if strangers:
        probe.ok = False
        probe.error = f"port {port} is held by uid {strangers[0]}, not by app {app}'s user: the answer is refused"


def pick_port(low: int, high: int, taken: set[int]) -> int | None:
    return next((p for p in range(low, high + 1) if p not in taken), None)


def plan(ctx: Context) -> Step:
    """A new port is chosen and reserved under the host lock (a flock on a file in /run, gone when
    the run ends) and recorded in ripdep's state only when applied: parallel deploys get distinct
    ports, and a refused deploy leaves no port behind."""
    rid = f"port:{ctx.app}"
    if ctx.state.port:
        ctx.port = ctx.state.port
        return Step(rid, [], f"127.0.0.1:{ctx.port}")
    host, settings = ctx.host, ctx.settings
    with host.host_lock(ctx.paths):
        taken = {s.port for s in host.all_states(ctx.paths) if s.app != ctx.app and s.port}
        taken |= {p for p, _ in host.listeners()} | host.reserved_ports(ctx.paths)
        port = pick_port(settings.port_min, settings.port_max, taken)
        if port is None:
            raise PreconditionFailed(f"no free port left in {settings.port_min}-{settings.port_max}",
                                     hint="widen port_min/port_max in /etc/ripdep/ripdep.toml")
        if not ctx.check:
            host.reserve_port(ctx.paths, port)
    ctx.port = port
    return Step(rid, [Change(rid, Action.ALLOCATE, f"allocate 127.0.0.1:{port}", ops=(Record.of(port=port),))],
                f"127.0.0.1:{port}")
