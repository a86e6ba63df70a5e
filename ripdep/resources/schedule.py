"""backup-timer:NAME — scheduled backups: ripdep-backup-NAME.timer and .service from units/
templates, enabled and started when the manifest has [backup] schedule, removed when it has not."""

from __future__ import annotations

import os

from ripdep import render
from ripdep.context import Context
from ripdep.errors import BadInput
from ripdep.host import fs, systemd
from ripdep.host.proc import run
from ripdep.resources import Change, Step
from ripdep.resources.file import DesiredFile, plan_file, refuse_foreign

RIPDEP = "/usr/local/bin/ripdep"


def check_calendar(expr: str) -> None:
    result = run(["systemd-analyze", "calendar", expr], check=False)
    if result.returncode != 0:
        raise BadInput(f"manifest key 'backup.schedule': {expr!r} is not a systemd calendar expression",
                       details=result.stderr.strip().splitlines()[-3:])


def plan(ctx: Context) -> Step:
    app, paths = ctx.app, ctx.paths
    rid = f"backup-timer:{app}"
    timer, svc = paths.backup_unit_name(app, "timer"), paths.backup_unit_name(app)
    marker = render.MARKER.format(app=app)
    link = paths.units / "timers.target.wants" / timer
    schedule = ctx.spec.backup.schedule
    changes: list[Change] = []
    if schedule is None:
        present = []
        for name in (timer, svc):
            content = fs.read_file(paths.units / name).content
            refuse_foreign(paths.units / name, content, marker)
            if content is not None:
                present.append(name)
        if present:
            def remove():
                systemd.run_systemctl_quiet("stop", timer)
                fs.remove_file(link)
                for name in present:
                    fs.remove_file(paths.units / name)
                systemd.daemon_reload()
            changes.append(Change(rid, "remove", f"remove scheduled backups ({', '.join(present)})", run=remove))
        return Step(rid, changes, "no [backup] schedule")
    context = dict(marker=marker, app=app, ripdep=RIPDEP, schedule=schedule)
    for name, template in ((svc, "units/backup.service.j2"), (timer, "units/backup.timer.j2")):
        text = render.render_template(template, **context)
        changes += plan_file(rid, DesiredFile(paths.units / name, text.encode(), 0o644, marker=marker))
    if changes:
        check_calendar(schedule)
    if not os.path.islink(link):
        changes.append(Change(rid, "enable", f"enable {timer}", run=lambda: fs.symlink(link, paths.units / timer)))
    state = ctx.bus.read_unit(timer, with_file_state=False)
    if changes or state.active_state != "active":
        def reload_and_start():
            systemd.daemon_reload()
            systemd.systemctl("restart", timer)
        changes.append(Change(rid, "start", f"start {timer} ({schedule})", run=reload_and_start))
    return Step(rid, changes, f"backups: {schedule}")

