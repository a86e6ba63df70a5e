"""The --json contract (docs/json.md, docs/exit-codes.md): every command that takes --json prints
exactly one document, the envelope defined once in report.Envelope, with the same keys and types
in a success and in a failure, and exits with the document's exit_code.

Every filesystem root is under tmp_path and the user is not root, so nothing here reaches the
host. Successes that would need the host (systemd, PostgreSQL, Caddy) replace the one call that
would touch it with a canned result: what is tested is the CLI's wiring and the document.
"""

import json
import re
import types
import typing
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click
import pytest
from click.testing import CliRunner

from fakehost import rooted
from ripdep import BUILD, errors, lock, report
from ripdep.backup import BackupInfo
from ripdep.cli import main
from ripdep.dataops import BackupResult
from ripdep.engine import RunResult
from ripdep.fanout import AppOutcome
from ripdep.host import systemd
from ripdep.host.http import Probe
from ripdep.paths import PATHS
from ripdep.resources import Change, Step
from ripdep.status import AppStatus

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples/hello/ripdep.toml")
SECRET_VALUE = "contract-secret-4f1c"  # must never appear in any output
MANIFEST = """source = "."
start = ["/usr/bin/python3", "app.py"]

[env]
GREETING = "Hello"

[secrets]
SECRET_KEY = "generate"
"""


def documented_exit_codes() -> dict[str, int]:
    """docs/exit-codes.md's table: code name -> exit status."""
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", (ROOT / "docs/exit-codes.md").read_text(), re.M)
    return {code: int(status) for status, code in rows}


EXIT = documented_exit_codes()


@pytest.fixture(autouse=True)
def host(tmp_path, monkeypatch):
    """PATHS is one frozen object that every function takes as its default: point its root at
    tmp_path in place, and put it back afterwards. Not root, unless a case says so; chown is a
    no-op, so that a case that pretends to be root can write its files without being root."""
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr("os.chown", lambda *a, **k: None)
    monkeypatch.setattr("os.fchown", lambda *a, **k: None)
    with rooted(tmp_path):
        PATHS.host_config.parent.mkdir(parents=True)
        PATHS.host_config.write_text("")  # an initialised host, all defaults
        yield tmp_path


# --- set-ups: each takes (monkeypatch, ExitStack) -----------------------------------------------

def installed(mp, stack) -> None:
    """App hello, installed and recorded as stopped, with one stored secret."""
    PATHS.manifests.mkdir(parents=True, exist_ok=True)
    PATHS.manifest("hello").write_text(MANIFEST)
    PATHS.state_root.mkdir(parents=True, exist_ok=True)
    PATHS.state("hello").write_text('port = 20000\ndesired = "stopped"\n')
    PATHS.secrets("hello").mkdir(parents=True)
    (PATHS.secrets("hello") / "SECRET_KEY").write_text(SECRET_VALUE)


def as_root(mp, stack) -> None:
    mp.setattr("os.geteuid", lambda: 0)


def with_systemd(mp, stack) -> None:
    """systemd as PID 1 with no units: enough for status over an empty state root."""
    class Bus:
        def close(self):
            pass

    mp.setattr(systemd, "systemd_is_pid1", lambda: True)
    mp.setattr(systemd, "Bus", Bus)


def lock_held(mp, stack) -> None:
    stack.enter_context(lock.app_lock("hello"))


def stub(target: str, value) -> Callable:
    """Replace the call that would touch the host with one returning value (or raising it)."""
    def call(*args, **kwargs):
        if isinstance(value, Exception):
            raise value
        return value
    return lambda mp, stack: mp.setattr(target, call)


def ran() -> RunResult:
    url = "http://127.0.0.1/hello/"
    unit = "service:ripdep-hello.service"
    result = RunResult("hello", False, [Step(unit, [Change(unit, "restart", "restart ripdep-hello.service")])],
                       url, 20000)
    result.health = Probe(url, ok=True, status=200)
    return result


IN_SYNC = AppOutcome("hello", "in_sync")
CHANGES = AppOutcome("hello", "changes", [{"id": "unit:x", "action": "update", "detail": "update x"}])
APPLIED = AppOutcome("hello", "applied", [{"id": "unit:x", "action": "update", "detail": "update x"}])
TAKEN = BackupResult("hello", BackupInfo("hello", "20260101T000000Z", "/var/backups/ripdep/hello/20260101T000000Z",
                                         1024, True), removed=["20251201T000000Z"])


# --- the cases: every --json command, a success and a failure each ------------------------------

@dataclass
class Case:
    command: str
    argv: list[str]
    error: str | None = None  # the expected errors[0].code; None: a success
    setup: list[Callable] = field(default_factory=list)
    input: str | None = None
    data: object = ...  # the expected `data`, when worth pinning

    @property
    def app(self) -> str | None:
        if self.command in ("init", "list", "status", "plan", "apply") or self.command == "history" and len(self.argv) == 1:
            return None
        return self.argv[len(self.command.split())]


SUCCESSES = [
    Case("init", ["init"], setup=[as_root, stub("ripdep.hostinit.init_host",
                                                [Step("dir:/etc/ripdep", [Change("dir:/etc/ripdep", "create", "x")])])]),
    Case("deploy", ["deploy", "hello"], setup=[stub("ripdep.engine.deploy", ran())], data=None),
    Case("start", ["start", "hello"], setup=[stub("ripdep.engine.converge", ran())]),
    Case("stop", ["stop", "hello"], setup=[stub("ripdep.engine.converge", ran())]),
    Case("restart", ["restart", "hello"], setup=[stub("ripdep.engine.converge", ran())]),
    Case("list", ["list"], setup=[installed], data={"apps": ["hello"]}),
    Case("status", ["status"], setup=[with_systemd], data={"apps": [], "degraded": False, "ripdep": BUILD}),
    Case("config set", ["config", "set", "hello", "A=1", "--no-restart"], setup=[installed, as_root], data=None),
    Case("config unset", ["config", "unset", "hello", "GREETING", "--no-restart"], setup=[installed, as_root]),
    Case("config get", ["config", "get", "hello"], setup=[installed], data={"env": {"GREETING": "Hello"}}),
    Case("secret set", ["secret", "set", "hello", "OTHER", "--no-restart"], setup=[installed, as_root],
         input=SECRET_VALUE + "-new\n"),
    Case("secret rotate", ["secret", "rotate", "hello", "SECRET_KEY", "--no-restart"], setup=[installed, as_root]),
    Case("secret unset", ["secret", "unset", "hello", "SECRET_KEY", "--no-restart"], setup=[installed, as_root]),
    Case("secret list", ["secret", "list", "hello"], setup=[installed]),
    Case("backup", ["backup", "hello"], setup=[stub("ripdep.dataops.backup_app", TAKEN)]),
    Case("backup list", ["backup", "list", "hello"], setup=[installed], data={"backups": []}),
    Case("restore", ["restore", "hello", "20260101T000000Z", "--yes"], setup=[stub("ripdep.dataops.restore_app", ran())]),
    Case("destroy", ["destroy", "hello", "--yes"], setup=[stub("ripdep.dataops.destroy_app", ran())]),
    Case("releases", ["releases", "hello"], setup=[stub("ripdep.rollback.list_releases", [])], data={"releases": []}),
    Case("plan", ["plan"], setup=[stub("ripdep.fanout.select", ["hello"]), stub("ripdep.fanout.plan", [IN_SYNC])],
         data={"apps": [IN_SYNC.as_dict()]}),
    Case("apply", ["apply", "--all"], setup=[stub("ripdep.fanout.select", ["hello"]),
                                            stub("ripdep.fanout.apply", [APPLIED])]),
    Case("rollback", ["rollback", "hello"], setup=[stub("ripdep.rollback.rollback", ran())]),
    Case("history", ["history", "hello"], setup=[as_root], data={"entries": []}),
]

FAILURES = [
    Case("init", ["init"], "precondition"),
    Case("deploy", ["deploy", "Bad;Name"], "bad_input"),
    Case("deploy", ["deploy", "hello", "--manifest", EXAMPLE], "precondition"),
    Case("start", ["start", "hello"], "precondition"),
    Case("stop", ["stop", "hello"], "precondition"),
    Case("restart", ["restart", "hello"], "precondition"),
    Case("list", ["list"], "internal", setup=[stub("ripdep.ops.installed_apps", OSError("disk on fire"))]),
    Case("status", ["status", "hello"], "unknown_app"),
    Case("status", ["status", "--strict"], "degraded",
         setup=[stub("ripdep.status.collect", [AppStatus("hello", desired="running", active_state="failed")])]),
    Case("config set", ["config", "set", "hello", "A=1"], "precondition", setup=[installed]),
    Case("config unset", ["config", "unset", "hello", "A"], "precondition", setup=[installed]),
    Case("config get", ["config", "get", "hello"], "unknown_app"),
    Case("secret set", ["secret", "set", "hello", "OTHER"], "bad_input", input=""),
    Case("secret rotate", ["secret", "rotate", "hello", "SECRET_KEY"], "lock_held",
         setup=[installed, as_root, lock_held]),
    Case("secret unset", ["secret", "unset", "hello", "SECRET_KEY"], "precondition", setup=[installed]),
    Case("secret list", ["secret", "list", "hello"], "unknown_app"),
    Case("backup", ["backup", "hello"], "precondition", setup=[installed]),
    Case("backup list", ["backup", "list", "Bad;Name"], "bad_input"),
    Case("restore", ["restore", "hello", "20260101T000000Z", "--yes"], "precondition"),
    Case("destroy", ["destroy", "hello", "--yes"], "precondition"),
    Case("releases", ["releases", "Bad;Name"], "bad_input"),
    Case("plan", ["plan"], "changes_pending", setup=[stub("ripdep.fanout.select", ["hello"]),
                                                      stub("ripdep.fanout.plan", [CHANGES])]),
    Case("apply", ["apply"], "bad_input", setup=[as_root, installed]),
    Case("rollback", ["rollback", "hello"], "precondition"),
    Case("history", ["history", "Bad;Name"], "bad_input"),
]


def conforms(value, hint) -> bool:
    """value is a JSON value of the annotated type (TypedDicts: exactly their keys)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(conforms(v, args[0]) for v in value)
    if typing.is_typeddict(hint):
        fields = typing.get_type_hints(hint)
        return isinstance(value, dict) and set(value) == set(fields) and all(
            conforms(value[k], h) for k, h in fields.items())
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


ENVELOPE = typing.get_type_hints(report.Envelope)


def run(case: Case, monkeypatch) -> tuple[int, str, str]:
    with ExitStack() as stack:
        for setup in case.setup:
            setup(monkeypatch, stack)
        result = CliRunner().invoke(main, [*case.argv, "--json"], input=case.input)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", SUCCESSES + FAILURES,
                         ids=[f"{c.command}:{c.error or 'ok'}" for c in SUCCESSES + FAILURES])
def test_every_command_prints_the_one_envelope(case, monkeypatch):
    status, out, err = run(case, monkeypatch)
    doc, end = json.JSONDecoder().raw_decode(out)
    assert out[end:] == "\n", "stdout must hold exactly one JSON document"
    assert list(doc) == list(ENVELOPE)  # the same keys, in the same order, every time
    for key, hint in ENVELOPE.items():
        assert conforms(doc[key], hint), f"{key}: {doc[key]!r} is not {hint}"
    assert doc["version"] == report.VERSION
    assert doc["command"] == case.command and doc["app"] == case.app
    assert status == doc["exit_code"]
    assert doc["failed"] is (doc["exit_code"] != 0) is bool(doc["errors"])
    if case.error:
        assert doc["errors"][0]["code"] == case.error and doc["exit_code"] == EXIT[case.error]
        assert doc["msg"] == doc["errors"][0]["message"]
        if case.error not in ("degraded", "changes_pending"):  # these show the rows that made them fail
            assert doc["data"] is None and doc["changed"] is False
    else:
        assert doc["exit_code"] == 0, doc
    if case.data is not ...:
        assert doc["data"] == case.data
    assert SECRET_VALUE not in out + err


def test_not_root_is_a_documented_precondition(monkeypatch):
    status, out, _ = run(Case("deploy", ["deploy", "hello", "--manifest", EXAMPLE], "precondition"), monkeypatch)
    doc = json.loads(out)
    assert "must run as root" in doc["msg"] and status == doc["exit_code"] == EXIT["precondition"] == 3


def test_secret_list_shows_names_not_values(monkeypatch):
    _, out, _ = run(Case("secret list", ["secret", "list", "hello"], setup=[installed]), monkeypatch)
    rows = json.loads(out)["data"]["secrets"]
    assert [(r["name"], r["has_value"]) for r in rows] == [("SECRET_KEY", True)]
    assert SECRET_VALUE not in out


def test_strict_status_fails_with_its_rows(monkeypatch):
    case = next(c for c in FAILURES if c.error == "degraded")
    _, out, err = run(case, monkeypatch)
    doc = json.loads(out)
    assert doc["data"]["degraded"] is True and [r["app"] for r in doc["data"]["apps"]] == ["hello"]
    assert "ripdep: degraded: hello" in err  # the human line is unchanged


def test_backup_reports_what_it_wrote_and_pruned(monkeypatch):
    _, out, _ = run(SUCCESSES[[c.command for c in SUCCESSES].index("backup")], monkeypatch)
    doc = json.loads(out)
    assert doc["changed"] is True and doc["data"]["removed"] == ["20251201T000000Z"]
    assert [a["action"] for a in doc["actions"]] == ["create", "remove"]
    assert doc["data"]["backup"]["name"] == "20260101T000000Z"


def json_commands(group: click.Group = main, prefix: tuple[str, ...] = ()):
    """Every command that takes --json, named as its document's `command`."""
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from json_commands(command, path)
        elif any(p.name == "as_json" for p in command.params):
            yield " ".join(path).replace("backup take", "backup")  # `ripdep backup APP`


def test_every_json_command_is_covered():
    commands = set(json_commands())
    assert {c.command for c in SUCCESSES} == commands
    assert {c.command for c in FAILURES} == commands


# --- the docs, checked against the one definition ----------------------------------------------

def json_type(hint) -> str:
    """A type as docs/json.md's table writes it."""
    args = typing.get_args(hint)
    if type(None) in args:
        return " or ".join(json_type(a) for a in args if a is not type(None)) + " or null"
    if typing.get_origin(hint) is list:
        return f"array of {json_type(args[0])}s"
    if hint is dict or typing.is_typeddict(hint):
        return "object"
    return {str: "string", int: "integer", bool: "boolean"}[hint]


def test_docs_key_table_matches_the_envelope():
    text = (ROOT / "docs/json.md").read_text()
    section = text.split("## The envelope", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")]
    assert [(key.strip("`"), kind) for key, kind, _ in rows] == [(k, json_type(h)) for k, h in ENVELOPE.items()]
    assert f'"version": {report.VERSION},' in section


def test_exit_codes_pinned():
    """docs/exit-codes.md and errors.py give every code the same number, both ways."""
    assert documented_exit_codes() == errors.CODE_TO_EXIT
    assert "| 0 | — |" in (ROOT / "docs/exit-codes.md").read_text() and errors.EXIT_OK == 0
    constants = {v for k, v in vars(errors).items() if k.startswith("EXIT_") and k != "EXIT_OK"}
    assert constants == set(errors.CODE_TO_EXIT.values())
    classes = {c.code for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.RipdepError)}
    assert classes == set(errors.CODE_TO_EXIT)
