"""The audit log: one JSON line per command that changes the host, appended to
/var/log/ripdep/audit.jsonl (root-only) from the one place cli.py reports a command's outcome;
`ripdep history` reads it (docs/fleet.md).

What a line never holds: a secret value. Values arrive on stdin (`secret set`) or from SSM, never in
the command line; `config set` values and a `run` command's arguments are left out anyway, and
every text that goes in is scrubbed of the app's stored secret values before it is written.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import sys
from datetime import datetime, timezone

from ripdep.paths import PATHS, Paths

# the commands that change the host (with --check they change nothing and are not recorded)
MUTATING = frozenset({"init", "deploy", "start", "stop", "restart", "config set", "config unset", "secret set",
                      "secret rotate", "secret unset", "backup", "restore", "destroy", "run", "rollback", "apply"})
MAX_CHANGES = 200
MAX_TEXT = 2000
MIN_SECRET = 4  # shorter stored values are not scrubbed (they would blank out ordinary words)
ENV_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=.*", re.S)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def login_user() -> str | None:
    """Who logged in (pam_loginuid sets it at an ssh or console login; sudo and su keep it)."""
    try:
        with open("/proc/self/loginuid") as f:
            uid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if uid in (-1, 4294967295) else _user_name(uid)


def who() -> dict:
    """The person behind the command, as far as the host can tell: SUDO_USER, else the login user
    (an ssh login), else the process's own user. Root can forge all of it: a record, not a proof."""
    sudo = os.environ.get("SUDO_USER") or None
    login = login_user()
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    via = "sudo" if sudo else "ssh" if ssh else "systemd" if os.environ.get("INVOCATION_ID") else "local"
    return {"user": sudo or login or _user_name(os.getuid()), "via": via, "sudo_user": sudo, "login_user": login,
            "ssh_client": ssh[0] if ssh else None}


def redact_argv(command: str, argv: list[str]) -> list[str]:
    """The command line as typed, without what may carry a value: `config set` values (KEY=***)
    and a `run` command's arguments (its program is kept)."""
    out = list(argv)
    if command == "config set":
        return [f"{m.group(1)}=***" if (m := ENV_PAIR.fullmatch(a)) else a for a in out]
    if command == "run":
        app = next((i for i in range(1, len(out)) if not out[i].startswith("-")), len(out))
        program = app + 1
        while program < len(out) and out[program].startswith("-"):  # --pty/--pipe, "--"
            program += 1
        if len(out) > program + 1:
            return out[:program + 1] + [f"[{len(out) - program - 1} argument(s) not recorded]"]
    return out


def secret_values(app: str | None, paths: Paths = PATHS) -> list[str]:
    """The app's stored secret values (generated, set, fetched from SSM): the one store of them."""
    if not app:
        return []
    found = []
    try:
        for entry in os.scandir(paths.secrets(app)):
            if entry.is_file(follow_symlinks=False):
                with open(entry.path, "rb") as f:
                    value = f.read(65536).decode("utf-8", "replace").strip()
                if len(value) >= MIN_SECRET:
                    found.append(value)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        pass
    return sorted(found, key=len, reverse=True)


def scrub(value, secrets: list[str]):
    """value (str, list, dict) with every occurrence of a secret replaced by ********, and every
    string cut to MAX_TEXT characters."""
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, "********")
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    return value


def entry(command: str, app: str | None, argv: list[str], steps=(), error=None, exit_code: int | None = None,
          paths: Paths = PATHS) -> dict:
    changes = [{"id": c.id, "action": str(getattr(c.action, "value", c.action)), "detail": c.detail}
               for s in steps for c in s.changes]
    if exit_code is None:
        exit_code = error.exit_status if error is not None else 0
    outcome = "failed" if error is not None else "changed" if changes else "unchanged"
    doc = {"time": now(), "host": socket.gethostname(), **who(), "pid": os.getpid(), "command": command,
           "argv": ["ripdep", *redact_argv(command, argv)], "app": app, "outcome": outcome, "exit_code": exit_code,
           "error": {"code": error.code, "message": error.message} if error is not None else None,
           "changes": changes[:MAX_CHANGES], "changes_total": len(changes)}
    return scrub(doc, secret_values(app, paths))


def append(doc: dict, paths: Paths = PATHS) -> None:
    """One write(2) with O_APPEND: concurrent runs never interleave inside a line."""
    folder = paths.audit_log.parent
    os.makedirs(folder, mode=0o700, exist_ok=True)
    line = (json.dumps(doc, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(paths.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def record(command: str, app: str | None, steps=(), error=None, check: bool = False, exit_code: int | None = None,
           argv: list[str] | None = None, paths: Paths = PATHS) -> dict | None:
    """Append the command's line, if it is one that changes the host. Never raises: the command has
    happened; a log that cannot be written is a warning on stderr."""
    if command not in MUTATING or check or os.geteuid() != 0:  # not root: refused before it changed anything
        return None
    try:
        doc = entry(command, app, list(sys.argv[1:] if argv is None else argv), steps, error, exit_code, paths)
        append(doc, paths)
        return doc
    except Exception as e:  # noqa: BLE001 - the audit log must never turn a done command into a failure
        print(f"ripdep: warning: audit log {paths.audit_log} not written: {e}", file=sys.stderr)
        return None


def read(app: str | None = None, limit: int | None = None, paths: Paths = PATHS) -> list[dict]:
    """The entries, oldest first (the last rotation, kept uncompressed by `delaycompress`, too)."""
    rows = []
    for path in (paths.audit_log.with_name(paths.audit_log.name + ".1"), paths.audit_log):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a full disk: skip it, keep the rest
                    if isinstance(doc, dict) and (app is None or doc.get("app") == app):
                        rows.append(doc)
        except FileNotFoundError:
            continue
    return rows[-limit:] if limit else rows


def history(app: str | None, limit: int | None, paths: Paths = PATHS) -> list[dict]:
    from ripdep import names
    from ripdep.errors import PreconditionFailed

    if app is not None:
        names.check_app_name(app)
    if os.geteuid() != 0:
        raise PreconditionFailed("ripdep history must run as root: the audit log is root-only",
                                 hint="sudo ripdep history")
    return read(app, limit, paths)


def line(doc: dict) -> str:
    """One human line of an entry (app-influenced text is escaped by the caller)."""
    n = doc.get("changes_total", len(doc.get("changes") or []))
    what = doc.get("outcome", "?")
    if doc.get("error"):
        what += f" ({doc['error'].get('code')}: {doc['error'].get('message')})"
    elif n:
        what += f" ({n} change(s))"
    return f"{doc.get('time', '?')}  {doc.get('user', '?')}  {' '.join(doc.get('argv') or [])}  {what}"
