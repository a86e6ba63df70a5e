"""proxy:NAME — the app's way in: ripdep-NAME.proxy.socket (a unix socket held by PID 1, mode 0660
root:caddy) and ripdep-NAME.proxy.service (systemd-socket-proxyd in the app's network namespace,
forwarding to the app's 127.0.0.1:PORT there). Caddy proxies to the socket; nothing else can reach
the app's port, and nothing the app binds is visible outside its namespace (docs/hardening.md).

The app unit Wants= the socket and the socket is PartOf= the app: they start, restart and stop
together, so a stopped app has no socket (Caddy answers 502 at once) and `ripdep stop` stays simple.
"""

from __future__ import annotations

from ripdep import render
from ripdep.context import Context
from ripdep.resources import Step
from ripdep.resources.file import DesiredFile, plan_file


def plan(ctx: Context) -> Step:
    rid = f"proxy:{ctx.app}"
    marker = render.MARKER.format(app=ctx.app)
    changes = []
    for name, text in render.render_proxy_units(ctx.spec, ctx.allocated_port, ctx.paths).items():
        changes += plan_file(ctx.host, rid, DesiredFile(ctx.paths.units / name, text.encode(), 0o644, marker=marker))
    return Step(rid, changes, str(ctx.paths.proxy_socket(ctx.app)))
