"""`ripdep plan` and `ripdep apply`: many apps through the same engine as `deploy` (docs/fleet.md).

plan: every app (or the named ones) planned against the host, changing nothing; what a deploy would
do is the drift (a hand-edited unit, env file or snippet, a stopped service, new code in the
source, a manifest edited in place). An app another run is deploying is reported busy at once.
apply: the canary apps one by one, then the rest N at a time; by default the first failure stops
the fan-out (what runs finishes) and the apps not started are reported as skipped. Each app is its
own converge under its own lock, with its own release phase behind its own backup — in a child
process of the same build (`ripdep deploy APP --json`): a run switches its effective uid to reach
PostgreSQL as postgres, which in threads would switch it under the others' feet.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from threading import Lock

from ripdep import engine, names
from ripdep.errors import BadInput, LockHeld, RipdepError, UnknownApp
from ripdep.ops import installed_apps
from ripdep.paths import PATHS, Paths


@dataclass
class AppOutcome:
    app: str
    outcome: str  # plan: in_sync | changes | busy | error; apply: applied | unchanged | failed | skipped
    actions: list[dict] = field(default_factory=list)
    error: dict | None = None
    release: str | None = None
    seconds: float = 0.0
    steps: list = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {"app": self.app, "outcome": self.outcome, "actions": self.actions, "error": self.error,
                "release": self.release, "seconds": round(self.seconds, 3)}


def select(apps: tuple[str, ...], every: bool, paths: Paths = PATHS, need_choice: bool = False) -> list[str]:
    """The apps to act on, in order; every name is checked before anything runs."""
    engine.require_root()
    installed = installed_apps(paths)
    if apps and every:
        raise BadInput("give app names or --all, not both")
    if not apps:
        if need_choice and not every:
            raise BadInput("name the apps to apply, or --all", hint="ripdep plan shows what each would change")
        return installed
    for app in apps:
        names.check_app_name(app)
        if app not in installed:
            raise UnknownApp(f"app {app!r} is not managed by ripdep; nothing was changed",
                             hint="ripdep list shows the apps it manages")
    return list(dict.fromkeys(apps))


def _release(app: str, paths: Paths) -> str | None:
    from ripdep.state import read_state

    state = read_state(app, paths)
    return state.release or None if state else None


def _outcome(app: str, result, error: RipdepError | None, t0: float, check: bool, paths: Paths) -> AppOutcome:
    steps = (result.steps if result else []) or (error.result.steps if error is not None and error.result else [])
    actions = [c.as_dict() for s in steps for c in s.changes]
    if isinstance(error, LockHeld):
        kind = "busy"
    elif error is not None:
        kind = "error" if check else "failed"
    elif check:
        kind = "changes" if actions else "in_sync"
    else:
        kind = "applied" if actions else "unchanged"
    return AppOutcome(app, kind, actions, error.as_dict() if error else None, _release(app, paths),
                      time.monotonic() - t0, steps)


def plan(apps: list[str], paths: Paths = PATHS) -> list[AppOutcome]:
    out = []
    for app in apps:
        t0 = time.monotonic()
        try:
            out.append(_outcome(app, engine.deploy(app, None, check=True, paths=paths), None, t0, True, paths))
        except RipdepError as e:
            out.append(_outcome(app, None, e, t0, True, paths))
    return out


def in_process(app: str, paths: Paths) -> AppOutcome:
    """One app's deploy in this process (plan's way; tests use it with a fake engine)."""
    t0 = time.monotonic()
    try:
        return _outcome(app, engine.deploy(app, None, paths=paths), None, t0, False, paths)
    except RipdepError as e:
        return _outcome(app, None, e, t0, False, paths)


def in_child(app: str, paths: Paths) -> AppOutcome:
    """One app's deploy as `ripdep deploy APP --json` run by this very build (its folder first on
    the child's path), read back from the child's JSON document."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import ripdep
    from ripdep.resources import Change, Step

    t0 = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(Path(ripdep.__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-m", "ripdep", "deploy", app, "--json"], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        error = {"code": "internal", "message": f"ripdep deploy {app} printed no JSON (exit {proc.returncode})",
                 "hint": None, "details": proc.stderr.strip().splitlines()[-5:]}
        return AppOutcome(app, "failed", [], error, _release(app, paths), time.monotonic() - t0)
    actions = doc.get("actions") or []
    steps = [Step(a["id"], [Change(a["id"], a["action"], a["detail"])]) for a in actions]
    error = (doc.get("errors") or [None])[0]
    kind = "failed" if doc.get("failed") else "applied" if actions else "unchanged"
    return AppOutcome(app, kind, actions, error, _release(app, paths), time.monotonic() - t0, steps)


def apply(apps: list[str], parallel: int = 1, canary: int = 0, keep_going: bool = False, paths: Paths = PATHS,
          progress=lambda outcome: None, runner=in_child) -> list[AppOutcome]:
    if parallel < 1:
        raise BadInput(f"--parallel {parallel}: at least 1")
    if canary < 0:
        raise BadInput(f"--canary {canary}: 0 or more")
    done: dict[str, AppOutcome] = {}
    said = Lock()

    def one(app: str) -> AppOutcome:
        result = runner(app, paths)
        with said:
            progress(result)
        return result

    stop = False
    for app in apps[:canary]:
        done[app] = one(app)
        if done[app].outcome == "failed" and not keep_going:
            stop = True
            break
    rest = [a for a in apps if a not in done] if not stop else []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        running: dict[Future, str] = {}
        queue = list(rest)
        while queue or running:
            while queue and len(running) < parallel and not stop:
                app = queue.pop(0)
                running[pool.submit(one, app)] = app
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                app = running.pop(future)
                done[app] = future.result()
                if done[app].outcome == "failed" and not keep_going:
                    stop = True
    return [done.get(app) or AppOutcome(app, "skipped", release=_release(app, paths)) for app in apps]
