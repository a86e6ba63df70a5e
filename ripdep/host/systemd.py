"""systemd: unit properties read over D-Bus in one call per interface (pystemd's low-level bus),
changes through systemctl (which waits for the job to finish and reports failures plainly)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ripdep.errors import PreconditionFailed
from ripdep.host.proc import run

SYSTEMD = b"org.freedesktop.systemd1"
UNIT_PREFIX = b"/org/freedesktop/systemd1/unit"


@dataclass(frozen=True)
class UnitState:
    load_state: str  # loaded | not-found | ...
    active_state: str  # active | inactive | failed | activating | ...
    sub_state: str
    unit_file_state: str  # enabled | disabled | "" (no file)
    main_pid: int
    n_restarts: int
    memory_current: int | None
    memory_max: int | None
    active_enter_usec: int  # CLOCK_REALTIME µs when it last became active
    need_daemon_reload: bool


def systemd_is_pid1() -> bool:
    return os.path.isdir("/run/systemd/system")


def require_systemd() -> None:
    if not systemd_is_pid1():
        raise PreconditionFailed(
            "systemd is not running as PID 1 on this machine",
            hint="ripdep manages systemd units: run it on a host booted with systemd "
                 "(tests/demo.sh runs it in a throwaway systemd container)",
        )


def dbuslib():
    """pystemd's low-level bus module, without running pystemd's package __init__: that imports its
    whole object layer and lxml (8-55 ms), none of which ripdep uses. The package is stood in for
    while dbuslib and its two helpers load, then taken out again, so a later `import pystemd` still
    gets the real package."""
    import sys

    lib = sys.modules.get("pystemd.dbuslib")
    if lib is not None:
        return lib
    if "pystemd" in sys.modules:
        import pystemd.dbuslib

        return pystemd.dbuslib
    import types
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("pystemd")
    if spec is None or not spec.submodule_search_locations:
        raise PreconditionFailed("pystemd is not installed", hint="reinstall ripdep: sudo ./install.sh")
    stand_in = types.ModuleType("pystemd")
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules["pystemd"] = stand_in
    try:
        import pystemd.dbuslib
    finally:
        if sys.modules.get("pystemd") is stand_in:
            del sys.modules["pystemd"]
    return sys.modules["pystemd.dbuslib"]


class Bus:
    """One connection to the system bus for a whole run."""

    def __init__(self):
        self._bus = dbuslib().DBus()  # imported here: only commands that talk to systemd pay
        try:
            self._bus.open()
        except Exception as e:  # pystemd raises its own DBus errors without a common base
            raise PreconditionFailed(f"cannot reach systemd over D-Bus: {e}",
                                     hint="is dbus running? (systemctl status dbus)") from None

    def close(self) -> None:
        self._bus.close()

    def _get(self, path: bytes, interface: bytes, prop: bytes):
        apply_signature = dbuslib().apply_signature
        reply = self._bus.call_method(SYSTEMD, path, b"org.freedesktop.DBus.Properties", b"Get",
                                      apply_signature(b"ss", [interface, prop]))
        return reply.body

    def active_state(self, name: str) -> str:
        """Only ActiveState: one Get (~0.2 ms) where read_unit makes six or more."""
        path_encode = dbuslib().path_encode
        return self._get(path_encode(UNIT_PREFIX, name.encode()), b"org.freedesktop.systemd1.Unit",
                         b"ActiveState").decode()

    def read_unit(self, name: str, *, with_file_state: bool = True) -> UnitState:
        """Only the properties ripdep uses, one `Get` each: ~0.2 ms apiece, where one `GetAll` of
        the Service interface (hundreds of properties) costs ~2.4 ms."""
        path = dbuslib().path_encode(UNIT_PREFIX, name.encode())

        def unit(prop: bytes):
            return self._get(path, b"org.freedesktop.systemd1.Unit", prop)

        def service(prop: bytes):
            value = self._get(path, b"org.freedesktop.systemd1.Service", prop)
            return None if value == 2**64 - 1 else int(value)  # "infinity" / not available

        load_state = unit(b"LoadState").decode()
        active_state = unit(b"ActiveState").decode()
        loaded = load_state == "loaded" and name.endswith(".service")  # timers have no Service interface
        running = active_state != "inactive" and loaded
        return UnitState(
            load_state=load_state,
            active_state=active_state,
            sub_state=unit(b"SubState").decode(),
            unit_file_state=unit(b"UnitFileState").decode() if with_file_state else "",
            main_pid=(service(b"MainPID") or 0) if running else 0,
            n_restarts=(service(b"NRestarts") or 0) if loaded else 0,
            memory_current=service(b"MemoryCurrent") if running else None,
            memory_max=service(b"MemoryMax") if loaded else None,
            active_enter_usec=int(unit(b"ActiveEnterTimestamp")) if running else 0,
            need_daemon_reload=bool(unit(b"NeedDaemonReload")) if with_file_state else False,
        )


    def read_job(self, service: str, timer: str) -> dict:
        """A scheduled job: its timer's state, last and next run (UTC ISO), and the last run's result."""
        from datetime import datetime, timezone

        from pystemd.dbuslib import path_encode

        def when(usec) -> str | None:
            usec = int(usec)
            if not usec or usec == 2**64 - 1:
                return None
            return datetime.fromtimestamp(usec / 1_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        tpath, spath = path_encode(UNIT_PREFIX, timer.encode()), path_encode(UNIT_PREFIX, service.encode())
        timer_state = self._get(tpath, b"org.freedesktop.systemd1.Unit", b"ActiveState").decode()
        loaded = self._get(spath, b"org.freedesktop.systemd1.Unit", b"LoadState").decode() == "loaded"
        last = self._get(tpath, b"org.freedesktop.systemd1.Timer", b"LastTriggerUSec") if timer_state != "inactive" else 0
        return {
            "timer": timer_state,
            "running": self.active_state(service) in ("active", "activating"),
            "last_run": when(last),
            "result": self._get(spath, b"org.freedesktop.systemd1.Service", b"Result").decode() if loaded else None,
            "next_run": when(self._get(tpath, b"org.freedesktop.systemd1.Timer", b"NextElapseUSecRealtime"))
            if timer_state == "active" else None,
        }


def systemctl(*args: str) -> None:
    run(["systemctl", *args])


def run_systemctl_quiet(*args: str) -> None:
    """systemctl where "already so" is fine (stopping a stopped unit, disabling a missing one)."""
    run(["systemctl", *args], check=False)


VERIFY = ["systemd-analyze", "verify"]
SECURITY = ["systemd-analyze", "security", "--offline=true", "--no-pager"]


def verify_problems(result) -> list[str]:
    """`systemd-analyze verify`: any stderr counts as a failure (an unknown key only warns)."""
    return [line for line in (result.stderr + (result.stdout if result.returncode else "")).splitlines() if line.strip()]


def exposure(result) -> float:
    """Exposure score (0 best .. 10 worst) from `systemd-analyze security --offline=true`."""
    # "→ Overall exposure level for x.service: 1.1 OK :-}" (the face differs with the locale)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    if match:
        return float(match.group(1))
    raise RuntimeError(f"systemd-analyze security printed no score: {result.stderr.strip()[:300]}")


def verify_and_score(path: str) -> tuple[list[str], float | None]:
    """Both checks of a candidate unit at once (two processes side by side, ~40 ms saved on a
    deploy that writes a unit); the score counts only when verify found nothing."""
    from ripdep.host.proc import run_together

    verified, scored = run_together([[*VERIFY, path], [*SECURITY, path]])
    problems = verify_problems(verified)
    return problems, None if problems else exposure(scored)


def journal_tail(unit: str, lines: int = 20) -> list[str]:
    result = run(["journalctl", "--unit", unit, "--lines", str(lines), "--no-pager", "--output", "short-iso",
                  "--quiet"], check=False)
    return result.stdout.splitlines()[-lines:]
