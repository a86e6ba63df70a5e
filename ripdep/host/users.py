"""Unix users and groups (read with pwd/grp, change with useradd/usermod)."""

from __future__ import annotations

import grp
import pwd
from dataclasses import dataclass

from ripdep.host.proc import run

NOLOGIN = "/usr/sbin/nologin"


@dataclass(frozen=True)
class UserState:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str
    group_name: str | None  # name of the primary group, None if it has no entry


def read_user(name: str) -> UserState | None:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    try:
        group = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        group = None
    return UserState(name, pw.pw_uid, pw.pw_gid, pw.pw_gecos, pw.pw_dir, pw.pw_shell, group)


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def create_system_user(name: str, *, gecos: str, home: str) -> None:
    # --user-group creates the group of the same name in the same call
    run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", home,
         "--shell", NOLOGIN, "--comment", gecos, name])


def modify_user(name: str, *, gecos: str, home: str) -> None:
    run(["usermod", "--comment", gecos, "--home", home, "--shell", NOLOGIN, name])


def delete_user(name: str) -> None:
    # the user's group goes with it (USERGROUPS_ENAB); its files were removed by the caller
    run(["userdel", name])
