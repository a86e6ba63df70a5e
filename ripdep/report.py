"""Rendering results at the edge: one human line per step (stderr), a summary, or the JSON document.

The JSON document (docs/json.md) is versioned and keeps the same keys whether or not anything
changed, and on failure; it never carries a secret value (diffs are masked before they get here).
"""

from __future__ import annotations

import json
import sys

from ripdep.errors import RipdepError

VERSION = 1
PAST = {"restore": "restored", "rotate": "rotated", "stop": "stopped", "disable": "disabled", "create": "created", "update": "updated", "fix": "corrected", "remove": "removed", "enable": "enabled",
        "daemon-reload": "reloaded", "start": "started", "restart": "restarted", "reload": "reloaded",
        "allocate": "allocated"}


def step_line(step) -> str:
    kind, _, name = step.id.partition(":")
    if step.changes:
        done = ", ".join(dict.fromkeys(PAST.get(c.action, c.action) for c in step.changes))
    else:
        done = "unchanged"
    note = f" ({step.note})" if step.note else ""
    return f"{kind} {name} ... {done}{note}"


def print_step(step) -> None:
    print(step_line(step), file=sys.stderr, flush=True)


def run_document(command: str, app: str, result=None, error: RipdepError | None = None, check: bool = False,
                 with_diff: bool = False) -> dict:
    """The document of deploy, start, stop and restart: same keys in every outcome."""
    steps = result.steps if result else []
    actions = [c.as_dict() for s in steps for c in s.changes]
    changed = bool(actions) and not check if result else False
    if error:
        msg = error.message
    elif check:
        msg = f"{len(actions)} change(s) would be made" if actions else "nothing to change"
    else:
        msg = f"{len(actions)} change(s) made" if actions else "nothing changed"
    return {
        "version": VERSION,
        "command": command,
        "app": app,
        "changed": changed,
        "failed": error is not None,
        "check": check,
        "msg": msg,
        "url": result.url if result else None,
        "port": result.port if result else None,
        "actions": actions,
        "steps": [{"id": s.id, "changed": s.changed, "note": s.note} for s in steps],
        "health": result.health.as_dict() if result and result.health else None,
        "diff": [c.diff for s in steps for c in s.changes if c.diff] if with_diff else [],
        "errors": [error.as_dict()] if error else [],
        "exit_code": error.exit_status if error else 0,
    }


def print_json(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def print_error(error: RipdepError) -> None:
    print(f"ripdep: error: {error.message}", file=sys.stderr)
    for line in error.details:
        print(f"  {line}", file=sys.stderr)
    if error.hint:
        print(f"  hint: {error.hint}", file=sys.stderr)


def print_summary(result) -> None:
    n = sum(len(s.changes) for s in result.steps)
    if result.check:
        print(f"{result.app}: {n} change(s) would be made" if n else f"{result.app}: nothing to change")
        return
    parts = [f"{n} change(s)" if n else "unchanged"]
    if result.url:
        parts.append(result.url)
    if result.health:
        parts.append(f"healthy in {result.health.seconds:.2f}s")
    print(f"{result.app}: {', '.join(parts)}" + (f" ({result.seconds:.2f}s)" if result.seconds else ""))


def status_document(rows, error: RipdepError | None = None) -> dict:
    return {
        "version": VERSION,
        "command": "status",
        "failed": error is not None,
        "degraded": any(r.degraded for r in rows),
        "apps": [r.as_dict() for r in rows],
        "errors": [error.as_dict()] if error else [],
        "exit_code": error.exit_status if error else 0,
    }
