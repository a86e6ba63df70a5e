"""backup-timer:NAME — scheduled backups: ripdep-backup-NAME.timer and .service from units/
templates, enabled and started when the manifest has [backup] schedule, removed when it has not."""

from __future__ import annotations


from ripdep import render
from ripdep.context import Context
from ripdep.errors import BadInput
from ripdep.resources import Action, Change, RemoveFile, Step, Symlink, Systemctl
from ripdep.resources.file import DesiredFile, plan_file, refuse_foreign

RIPDEP = "/usr/local/bin/ripdep"


def check_calendar(host, expr: str, key: str = "backup.schedule") -> None:
    """systemd-analyze calendar's verdict on a manifest's OnCalendar= value, naming its key."""
    problems = host.check_calendar(expr)
    if problems:
        raise BadInput(f"manifest key '{key}': {expr!r} is not a systemd calendar expression", details=problems)


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
            content = ctx.host.read_file(paths.units / name).content
            refuse_foreign(paths.units / name, content, marker)
            if content is not None:
                present.append(name)
        if present:
            ops = (Systemctl(("stop", timer), quiet=True), RemoveFile(link),
                   *(RemoveFile(paths.units / name) for name in present), Systemctl(("daemon-reload",)))
            changes.append(Change(rid, Action.REMOVE, f"remove scheduled backups ({', '.join(present)})", ops=ops))
        return Step(rid, changes, "no [backup] schedule")
    context = dict(marker=marker, app=app, ripdep=RIPDEP, schedule=schedule)
    for name, template in ((svc, "units/backup.service.j2"), (timer, "units/backup.timer.j2")):
        text = render.render_template(template, **context)
        changes += plan_file(ctx.host, rid, DesiredFile(paths.units / name, text.encode(), 0o644, marker=marker))
    if changes:
        check_calendar(ctx.host, schedule)
    if not ctx.host.is_link(link):
        changes.append(Change(rid, Action.ENABLE, f"enable {timer}", ops=(Symlink(link, paths.units / timer),)))
    if changes or ctx.host.active_state(timer) != "active":
        changes.append(Change(rid, Action.START, f"start {timer} ({schedule})",
                              ops=(Systemctl(("daemon-reload",)), Systemctl(("restart", timer)))))
    return Step(rid, changes, f"backups: {schedule}")

