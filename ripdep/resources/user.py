"""user:NAME — the app's system user and group (no login shell), marked in its GECOS field."""

from __future__ import annotations

from ripdep.context import Context
from ripdep.errors import Conflict
from ripdep.host import users
from ripdep.resources import Action, Change, CreateUser, ModifyUser, Step


def gecos(app: str) -> str:
    return f"ripdep app {app}"


def diff_user(app: str, current: users.UserState | None, home: str, group_exists: bool) -> list[Change]:
    rid = f"user:{app}"
    if current is None:
        if group_exists:
            raise Conflict(f"group {app!r} exists but user {app!r} does not; ripdep did not create it",
                           hint="remove the group or pick another app name")
        return [Change(rid, Action.CREATE, f"create system user and group {app}")]
    if current.gecos != gecos(app):
        raise Conflict(f"user {app!r} exists and was not created by ripdep (GECOS {current.gecos!r})",
                       hint="pick another app name; ripdep never adopts users it did not create")
    if current.group_name != app:
        raise Conflict(f"user {app!r} has primary group {current.group_name!r}, not {app!r}")
    if (current.home, current.shell) != (home, users.NOLOGIN):
        return [Change(rid, Action.FIX, f"set home {home} and shell {users.NOLOGIN} for {app}")]
    return []


def plan(ctx: Context) -> Step:
    app, home = ctx.app, str(ctx.paths.app_state_dir(ctx.app))
    current = ctx.host.read_user(app)
    changes = diff_user(app, current, home, ctx.host.group_exists(app))
    for c in changes:
        c.then((CreateUser if c.action == "create" else ModifyUser)(app, gecos(app), home))
    return Step(f"user:{app}", changes, f"uid {current.uid}" if current else "")
