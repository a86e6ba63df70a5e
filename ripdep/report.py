"""Rendering results at the edge: one human line per step (stderr), a summary, or the JSON document.

Every command prints the same JSON document, the envelope (docs/json.md), built only by
`envelope()`: the same keys in every outcome — changed, unchanged, --check, failure — with the
command's own payload under `data`. It never carries a secret value (diffs are masked before they
get here; secret list carries names only).
"""

from __future__ import annotations

import json
import sys
from typing import TypedDict

from ripdep.errors import RipdepError

VERSION = 2  # 2: one envelope for every command, payloads under `data` (docs/json.md)
PAST = {"restore": "restored", "rotate": "rotated", "stop": "stopped", "disable": "disabled", "create": "created", "update": "updated", "fix": "corrected", "remove": "removed", "enable": "enabled",
        "daemon-reload": "reloaded", "start": "started", "restart": "restarted", "reload": "reloaded",
        "allocate": "allocated"}


def printable(text: str) -> str:
    """Text for a terminal: control characters (an app's error message can carry ESC sequences that
    clear the screen or write the clipboard) shown escaped, never sent raw. JSON escapes them itself."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def step_line(step) -> str:
    kind, _, name = step.id.partition(":")
    if step.changes:
        done = ", ".join(dict.fromkeys(PAST.get(c.action, c.action) for c in step.changes))
    else:
        done = "unchanged"
    note = f" ({step.note})" if step.note else ""
    return printable(f"{kind} {name} ... {done}{note}")


def print_step(step) -> None:
    print(step_line(step), file=sys.stderr, flush=True)


class ActionDoc(TypedDict):
    id: str
    action: str
    detail: str


class StepDoc(TypedDict):
    id: str
    changed: bool
    note: str


class ErrorDoc(TypedDict):
    code: str
    message: str
    hint: str | None
    details: list[str]


class Envelope(TypedDict):
    """The one definition of the document: keys in print order, with their types. docs/json.md's
    key table and tests/unit/test_contract.py are checked against it."""

    version: int
    command: str
    app: str | None
    changed: bool
    failed: bool
    check: bool
    msg: str
    url: str | None
    port: int | None
    actions: list[ActionDoc]
    steps: list[StepDoc]
    health: dict | None
    diff: list[str]
    errors: list[ErrorDoc]
    exit_code: int
    data: dict | None


def envelope(command: str, app: str | None = None, *, steps=(), check: bool = False, msg: str | None = None,
             url: str | None = None, port: int | None = None, health=None, data: dict | None = None,
             error: RipdepError | None = None, with_diff: bool = False) -> Envelope:
    """The document of every command. steps: what was planned or done (`changed` follows from them);
    data: the command's own payload (status rows, config values...), or None; error: the failure,
    which sets `failed`, `errors`, `exit_code` and `msg`."""
    actions = [ActionDoc(id=c.id, action=c.action.value, detail=c.detail) for s in steps for c in s.changes]
    if error is not None:
        msg = error.message
    elif msg is None and check:
        msg = f"{len(actions)} change(s) would be made" if actions else "nothing to change"
    elif msg is None:
        msg = f"{len(actions)} change(s) made" if actions else "nothing changed"
    exit_code = error.exit_status if error is not None else 0
    return Envelope(
        version=VERSION,
        command=command,
        app=app,
        changed=bool(actions) and not check,
        failed=exit_code != 0,
        check=check,
        msg=msg,
        url=url,
        port=port,
        actions=actions,
        steps=[StepDoc(id=s.id, changed=s.changed, note=s.note) for s in steps],
        health=health.as_dict() if health else None,
        diff=[c.diff for s in steps for c in s.changes if c.diff] if with_diff else [],
        errors=[ErrorDoc(code=error.code, message=error.message, hint=error.hint, details=list(error.details))]
        if error is not None else [],
        exit_code=exit_code,
        data=data,
    )


def run_document(command: str, app: str, result=None, error: RipdepError | None = None, check: bool = False,
                 with_diff: bool = False) -> Envelope:
    """The envelope of a command that returns a RunResult (deploy, start, stop, restore, config set...)."""
    if result is None:
        return envelope(command, app, check=check, error=error)
    return envelope(command, app, steps=result.steps, check=check, url=result.url, port=result.port,
                    health=result.health, error=error, with_diff=with_diff)


def backup_steps(result) -> list:
    """A backup as steps, so that its envelope says `changed` and lists what it wrote and pruned
    like every other command does."""
    from ripdep.resources import Action, Change, Step

    rid = f"backup:{result.app}"
    changes = [Change(f"{rid}/{result.backup.name}", Action.CREATE, f"take and verify backup {result.backup.name}")]
    changes += [Change(f"{rid}/{name}", Action.REMOVE, f"prune backup {name}") for name in result.removed]
    return [Step(rid, changes)]


def print_json(doc: Envelope) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def print_error(error: RipdepError) -> None:
    print(printable(f"ripdep: error: {error.message}"), file=sys.stderr)
    for line in error.details:
        print(printable(f"  {line}"), file=sys.stderr)
    if error.hint:
        print(printable(f"  hint: {error.hint}"), file=sys.stderr)


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
