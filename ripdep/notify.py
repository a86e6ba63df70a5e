"""Notifications of silent failures (docs/fleet.md): one JSON event each — app, event, detail, time,
host — to the host's `notify_webhook` (POST) and/or `notify_command` (stdin).

Raising an event never blocks the command that raised it: the event is written to a root-only
spool (/var/spool/ripdep/notify, one file each) and ripdep-notify.service is started without
waiting; it delivers, and ripdep-fleet.timer retries what is left every minute with a growing delay,
for a day. An event never carries a secret: its detail is a ripdep message (no journal lines), cut
short and scrubbed of the app's stored secret values.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets as random
import socket
import subprocess
import sys
import time

from ripdep.paths import PATHS, Paths

EVENTS = ("unit_failed", "deploy_failed", "rollback", "backup_failed", "backup_stale", "drift")
MAX_DETAIL = 1000
MAX_AGE = 86400  # seconds an undeliverable event is retried before it moves to failed/
SEND_TIMEOUT = 10
COMMAND_TIMEOUT = 30
NOTIFY_UNIT = "ripdep-notify.service"
# the command's own failure is the command's: these failures raise an event
FAILURE_EVENTS = {"deploy": "deploy_failed", "config set": "deploy_failed", "config unset": "deploy_failed",
                  "secret set": "deploy_failed", "secret rotate": "deploy_failed", "secret unset": "deploy_failed",
                  "start": "deploy_failed", "restart": "deploy_failed", "restore": "deploy_failed",
                  "backup": "backup_failed", "rollback": "rollback"}


def configured(settings) -> bool:
    return bool(settings.notify_webhook or settings.notify_command)


def make_event(app: str | None, event: str, detail: str, paths: Paths = PATHS) -> dict:
    from ripdep.audit import now, scrub, secret_values

    detail = " ".join(detail.split())  # one line
    detail = detail if len(detail) <= MAX_DETAIL else detail[:MAX_DETAIL] + "…"
    return scrub({"app": app, "event": event, "detail": detail, "time": now(), "host": socket.gethostname()},
                 secret_values(app, paths))


def emit(app: str | None, event: str, detail: str, paths: Paths = PATHS, settings=None, kick: bool = True) -> bool:
    """Spool one event (when notifications are configured) and start its delivery without waiting.
    Never raises: a notification that cannot be spooled is a warning on stderr."""
    try:
        if settings is None:
            from ripdep.hostconfig import load_host_config

            settings = load_host_config(paths)
        if not configured(settings):
            return False
        doc = make_event(app, event, detail, paths)
        spool = paths.notify_spool
        os.makedirs(spool, mode=0o700, exist_ok=True)
        name = f"{time.time_ns():020d}-{random.token_hex(4)}"
        record = {"event": doc, "attempts": 0, "next_try": 0, "created": time.time()}
        tmp = spool / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.rename(tmp, spool / f"{name}.json")
        if kick:
            start_unit(NOTIFY_UNIT, paths)
        return True
    except Exception as e:  # noqa: BLE001 - the command that raised the event must not fail for it
        print(f"ripdep: warning: notification {event} for {app} not spooled: {e}", file=sys.stderr)
        return False


def rollback(app: str, detail: str, paths: Paths = PATHS) -> bool:
    """For the release engine: a deploy that was rolled back raises `rollback`."""
    return emit(app, "rollback", detail, paths)


def live_host(paths: Paths) -> bool:
    """Starting units is for the real host only (never from tests pointing PATHS elsewhere)."""
    from pathlib import Path

    return paths.root == Path("/") and os.geteuid() == 0 and os.path.isdir("/run/systemd/system")


def start_unit(unit: str, paths: Paths = PATHS) -> None:
    """Start a oneshot without waiting for it (a no-op while it already runs)."""
    if live_host(paths):
        subprocess.run(["systemctl", "start", "--no-block", unit], check=False, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- delivery (ripdep-notify.service, ripdep-fleet.service) ------------------------------------

def post(url: str, body: bytes) -> str | None:
    """POST body; None when the receiver answered 2xx, else what went wrong. Redirects are not
    followed (a redirect is not a delivery), proxies from the environment are not used."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "ripdep-notify"})
    try:
        with opener.open(request, timeout=SEND_TIMEOUT) as answer:
            answer.read(65536)
            return None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"


def run_command(command: str, body: bytes, event: dict) -> str | None:
    import shlex

    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "RIPDEP_EVENT": str(event.get("event")), "RIPDEP_APP": str(event.get("app") or "")}
    try:
        proc = subprocess.run(shlex.split(command), input=body, capture_output=True, timeout=COMMAND_TIMEOUT,
                              env=env, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{type(e).__name__}: {e}"
    return None if proc.returncode == 0 else f"exit status {proc.returncode}"


def targets(settings) -> list[str]:
    return [t for t, on in (("webhook", settings.notify_webhook), ("command", settings.notify_command)) if on]


def deliver(paths: Paths = PATHS, settings=None, now: float | None = None, ignore_backoff: bool = False) -> dict:
    """Send every spooled event that is due, each to every target it has not reached yet. One
    deliverer at a time (a flock); returns counts for the journal."""
    if settings is None:
        from ripdep.hostconfig import load_host_config

        settings = load_host_config(paths)
    spool = paths.notify_spool
    counts = {"sent": 0, "waiting": 0, "given_up": 0}
    if not spool.is_dir():
        return counts
    fd = os.open(spool, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return counts  # another deliverer is at it
        for path in sorted(spool.glob("*.json")):
            now_t = time.time() if now is None else now
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if record.get("next_try", 0) > now_t and not ignore_backoff:
                counts["waiting"] += 1
                continue
            event = record["event"]
            body = json.dumps(event).encode()
            pending = record.get("pending", targets(settings))
            errors = {}
            for target in pending:
                problem = (post(settings.notify_webhook, body) if target == "webhook" and settings.notify_webhook
                           else run_command(settings.notify_command, body, event)
                           if target == "command" and settings.notify_command else None)
                if problem:
                    errors[target] = problem
            if not errors:
                path.unlink(missing_ok=True)
                counts["sent"] += 1
                continue
            record.update(pending=sorted(errors), attempts=record.get("attempts", 0) + 1,
                          last_error="; ".join(f"{t}: {e}" for t, e in errors.items()))
            record["next_try"] = now_t + min(15 * 2 ** (record["attempts"] - 1), 3600)  # 15 s, 30 s, ... 1 h
            if now_t - record.get("created", now_t) > MAX_AGE:
                failed = spool / "failed"
                failed.mkdir(mode=0o700, exist_ok=True)
                path.rename(failed / path.name)
                counts["given_up"] += 1
                print(f"ripdep-notify: gave up on {event.get('event')} for {event.get('app')}: "
                      f"{record['last_error']}", file=sys.stderr)
                continue
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(record))
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
            counts["waiting"] += 1
            print(f"ripdep-notify: {event.get('event')} for {event.get('app')} not delivered "
                  f"(attempt {record['attempts']}): {record['last_error']}", file=sys.stderr)
    finally:
        os.close(fd)
    return counts


# --- what raises events -------------------------------------------------------------------------

def app_of_unit(unit: str) -> str | None:
    """ripdep-NAME.service, ripdep-NAME.PROCESS[.N].service, ripdep-NAME.job.JOB.service -> NAME."""
    from ripdep import names

    if not unit.startswith("ripdep-") or not unit.endswith(".service"):
        return None
    app = unit[len("ripdep-"):-len(".service")].split(".")[0]
    return app if names.APP_NAME.fullmatch(app) else None


def unit_failed(unit: str, paths: Paths = PATHS) -> bool:
    """OnFailure= of an app unit (ripdep-notify@UNIT.service): spool the event and deliver it."""
    app = app_of_unit(unit)
    if app is None or not paths.manifest(app).exists():
        print(f"ripdep notify-event: {unit!r} is not a unit of an app ripdep manages", file=sys.stderr)
        return False
    result = ""
    try:
        proc = subprocess.run(["systemctl", "show", "-P", "Result", unit], capture_output=True, text=True, timeout=10)
        result = proc.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    detail = f"{unit} failed" + (f" (result: {result})" if result else "") + f"; see: ripdep logs {app}"
    spooled = emit(app, "unit_failed", detail, paths, kick=False)
    if spooled:
        deliver(paths)
    return spooled


def after_failure(command: str, app: str | None, error, paths: Paths = PATHS) -> None:
    """The CLI's hook: a failed deploy (or config/secret change that deploys, start, restart,
    restore) or backup raises its event, with ripdep's message (never the journal lines)."""
    event = FAILURE_EVENTS.get(command)
    if event is None or app is None or error is None or error.code in ("bad_input", "lock_held"):
        return  # a typo or a busy app is the caller's to see, not a silent failure
    if error.code == "rolled_back":  # the release engine switched back to the previous release
        event = "rollback"
    # ripdep's own words only: a message may quote what the app wrote (pg_restore's error about its
    # data, a file name in its state dir, its health answer), and an event leaves the host
    emit(app, event, f"ripdep {command} {app}: {error.code} (exit {error.exit_status}); "
                     f"the message and details: ripdep history {app}", paths)


# state of the periodic check: what was already announced, so that each condition raises one event
ANNOUNCED = "announced.json"


def check_rows(rows, paths: Paths = PATHS, settings=None) -> list[dict]:
    """The periodic check (ripdep-fleet.timer): an event for each condition that is new since the
    last check — a scheduled backup that is stale (did not run), a drift. (A backup that fails
    raises backup_failed itself, through the CLI's hook.) A condition
    that clears is forgotten, so its return raises an event again."""
    conditions: dict[str, str] = {}
    for row in rows:
        if row.backup_state == "stale":
            conditions[f"{row.app}/backup_stale"] = (
                f"no verified backup of {row.app} since {row.backup_last or 'ever'}; is its schedule running? "
                f"(systemctl status {paths.backup_unit_name(row.app, 'timer')})")
        for drift in drift_findings(row):
            conditions[f"{row.app}/drift"] = drift
    state_path = paths.notify_spool.parent / ANNOUNCED
    try:
        announced = set(json.loads(state_path.read_text()))
    except (OSError, ValueError):
        announced = set()
    raised = []
    for key, detail in sorted(conditions.items()):
        if key in announced:
            continue
        app, event = key.split("/", 1)
        if emit(app, event, detail, paths, settings, kick=False):
            raised.append({"app": app, "event": event})
    os.makedirs(state_path.parent, mode=0o700, exist_ok=True)
    tmp = state_path.with_name(f".{ANNOUNCED}.tmp")
    tmp.write_text(json.dumps(sorted(conditions)))
    os.chmod(tmp, 0o600)
    os.rename(tmp, state_path)
    return raised


def drift_findings(row) -> list[str]:
    """What drifted on the app, as far as `status` tells: its PostgreSQL role. (The lead's `plan`
    adds file and unit drift here.)"""
    if row.role_drift:
        return [f"PostgreSQL role {row.app} has {row.role_drift} (ripdep deploy {row.app} resets it)"]
    return []
