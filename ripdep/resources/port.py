"""port:NAME — the app's loopback port: allocated once under the host lock, then stable.

A new port is never one recorded for another app nor one any process listens on now.
"""

from __future__ import annotations

from ripdep.context import Context
from ripdep.errors import PreconditionFailed
from ripdep.lock import host_lock
from ripdep.resources import Change, Step
from ripdep.state import all_states


def listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def pick_port(low: int, high: int, taken: set[int]) -> int | None:
    return next((p for p in range(low, high + 1) if p not in taken), None)


def plan(ctx: Context) -> Step:
    rid = f"port:{ctx.app}"
    if ctx.state.port:
        ctx.port = ctx.state.port
        return Step(rid, [], f"127.0.0.1:{ctx.port}")
    with host_lock(ctx.paths):
        taken = {s.port for s in all_states(ctx.paths) if s.app != ctx.app and s.port} | listening_ports()
        port = pick_port(ctx.host.port_min, ctx.host.port_max, taken)
        if port is None:
            raise PreconditionFailed(f"no free port left in {ctx.host.port_min}-{ctx.host.port_max}",
                                     hint="widen port_min/port_max in /etc/ripdep/ripdep.toml")
        ctx.port = port
        # recorded at once, still under the host lock, so a parallel deploy cannot take it too
        ctx.record(port=port)
    return Step(rid, [Change(rid, "allocate", f"allocate 127.0.0.1:{port}")], f"127.0.0.1:{port}")
