"""Host-wide settings: /etc/ripdep/ripdep.toml, written by `ripdep init` only when absent.

Each setting is declared once, as a field of HostConfig: its type (the annotation, and the type of
its default), default, check and documentation. The parser, the validation, the default file that
`init` writes (DEFAULT_TEXT) and the table in docs/host-config.md all come from those fields; print
the table with `python -m ripdep.hostconfig --markdown` (tests/unit/test_settings.py compares it
with the doc).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar, cast

from ripdep.errors import BadInput, PreconditionFailed
from ripdep.paths import PATHS, Paths

T = TypeVar("T", int, str)
Check = Callable[[Any], str | None]  # a setting's value -> what is wrong with it, or None

# A Caddy site address line (":80", "localhost:80", "http://a.example.com, b.example.com",
# "[::1]:80", "*.example.com"): the line is found in and compared against the Caddyfile and route
# host names, so nothing that could end it or start another token there (line breaks and other
# control characters, braces, quotes, '#' comments) is accepted.
SITE_ADDRESS = re.compile(r"[A-Za-z0-9._:*\[\]/%-]+(?:(?:, ?| )[A-Za-z0-9._:*\[\]/%-]+)*")
MAX_SITE_ADDRESS = 1000


def setting(default: T, doc: str, check: Check | None = None) -> T:
    """One HostConfig field. `doc` is its row in docs/host-config.md and its comment in DEFAULT_TEXT;
    `check` refuses values of the right type that would still break something."""
    # a dataclasses Field, which @dataclass turns into the default; typed as the default so that
    # mypy checks the default against the field's annotation
    return cast(T, field(default=default, metadata={"doc": doc, "check": check}))


def at_least_one(value: int) -> str | None:
    return None if value >= 1 else f"is {value}, less than 1"


def backups_kept(value: int) -> str | None:
    # the same range as a manifest's backup.keep; 0 or less would make pruning delete every backup
    return None if 1 <= value <= 1000 else f"is {value}, out of range 1..1000"


def site_address(value: str) -> str | None:
    if len(value) <= MAX_SITE_ADDRESS and SITE_ADDRESS.fullmatch(value):
        return None
    return (f"{value[:80]!r} is not a Caddy site address line such as \":80\" or \"localhost:80, example.com\" "
            "(letters, digits and . _ : * [ ] / % - separated by ',' or ' '; no control characters, "
            "braces, quotes or '#')")


def absolute_or_empty(value: str) -> str | None:
    if value == "" or (value.startswith("/") and value.isprintable() and ".." not in value.split("/")
                       and len(value) <= 200):
        return None
    return f"{value[:80]!r} is not an absolute folder path (or \"\" for off)"


LOOPBACK_LISTEN = re.compile(r"(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]):(\d{1,5})")


def loopback_listen(value: str) -> str | None:
    match = LOOPBACK_LISTEN.fullmatch(value)
    if value == "" or match and all(int(n) < 256 for n in match.group(1).strip("[]").split(".") if n.isdigit()) \
            and 0 < int(match.group(2)) < 65536:
        return None
    return f"{value[:80]!r} is not a loopback address and port such as \"127.0.0.1:9180\" (or \"\" for off)"


def webhook_url(value: str) -> str | None:
    if value == "" or (re.fullmatch(r"https?://[^\s\x00-\x1f\x7f]+", value) and len(value) <= 2000):
        return None
    return "is not an http:// or https:// URL without spaces or control characters (or \"\" for off)"


def command_line(value: str) -> str | None:
    import shlex

    if value == "":
        return None
    try:
        argv = shlex.split(value)
    except ValueError as e:
        return f"cannot be split into words: {e}"
    if not argv or not argv[0].startswith("/") or not value.isprintable():
        return "must start with an absolute program path (no shell; no control characters)"
    return None

@dataclass(frozen=True)
class HostConfig:
    port_min: int = setting(20000, "the lowest loopback port ripdep allocates to apps: one per app, stable "
                                   "across deploys, never one another app holds or any process listens on")
    port_max: int = setting(29999, "the highest such port (1024 < `port_min` <= `port_max` < 65536)")
    caddy_path_site: str = setting(":80", "the Caddy site block (its address line as written in "
                                          "/etc/caddy/Caddyfile) that carries path routes such as "
                                          "http://127.0.0.1/hello/; `init` adds the import inside it. No "
                                          "control characters, braces, quotes or `#`",
                                   check=site_address)
    health_timeout: int = setting(30, "seconds the health check through Caddy may take after a start or "
                                      "restart (5 on a no-change run)", check=at_least_one)
    ssm_region: str = setting("", "AWS SSM Parameter Store region; empty = the standard AWS environment "
                                  "and config (`AWS_REGION`, instance profile, ...)")
    ssm_endpoint: str = setting("", "AWS SSM endpoint URL; empty = the standard AWS environment and config")
    backup_keep: int = setting(7, "verified backups kept per app in /var/backups/ripdep/APP/ (1..1000; a "
                                  "manifest's `backup.keep` overrides it)", check=backups_kept)
    backup_stale_after: int = setting(93600, "seconds after which a scheduled app's newest verified backup "
                                             "counts as stale", check=at_least_one)
    destroy_backup_max_age: int = setting(900, "seconds: how fresh a verified backup must be for `ripdep "
                                               "destroy`", check=at_least_one)
    s3_bucket: str = setting("", "S3 bucket for off-host copies of verified backups; empty = off")
    s3_prefix: str = setting("ripdep", "key prefix of those copies in the bucket (PREFIX/APP/BACKUP/...)")
    s3_region: str = setting("", "S3 region; empty = the standard AWS environment and config, as for SSM")
    s3_endpoint: str = setting("", "S3 endpoint URL; empty = the standard AWS environment and config")
    releases_keep: int = setting(5, "releases kept per app (code trees and their manifests, for rollback; "
                                 "1..100; an app's [releases] keep overrides it)", lambda v: None if 1 <= v <= 100
                                 else f"is {v}, out of range 1..100")
    releases_watch: int = setting(10, "seconds a new release must stay up and healthy after its switch before "
                                  "it is kept; a restart or a failing health check in them switches back to the "
                                  "previous release (0..3600; an app's [releases] watch overrides it)",
                                  lambda v: None if 0 <= v <= 3600 else f"is {v}, out of range 0..3600")
    metrics_textfile_dir: str = setting("/var/lib/prometheus/node-exporter", "folder of node_exporter's "
                                        "textfile collector (Debian's prometheus-node-exporter reads this one): "
                                        "ripdep writes `ripdep.prom` there, every minute and after each command "
                                        "that changes an app (docs/fleet.md); empty = off",
                                        check=absolute_or_empty)
    metrics_listen: str = setting("127.0.0.1:9180", "loopback address:port of the Caddy site that serves only "
                                                    "the `metrics` path of each app that has one, for Prometheus "
                                                    "(docs/fleet.md); empty = off", check=loopback_listen)
    notify_webhook: str = setting("", "URL that receives each event (a failed unit, deploy or backup, a stale "
                                      "backup, drift) as a JSON POST, retried until it answers 2xx; empty = off. "
                                      "This file is world-readable: a URL that carries a token belongs in a "
                                      "root-only `notify_command` script", check=webhook_url)
    notify_command: str = setting("", "a program and its arguments (absolute path, no shell), run as root with "
                                      "each event as JSON on stdin, retried until it exits 0; empty = off",
                                  check=command_line)


SETTINGS: tuple[Field[Any], ...] = fields(HostConfig)
TYPE_NAMES = {int: "integer", str: "string"}


def _toml(value: object) -> str:
    # the defaults are integers and plain ASCII strings, for which JSON and TOML are spelt the same
    # (tests/unit/test_settings.py parses DEFAULT_TEXT back)
    return json.dumps(value)


def _default_text() -> str:
    lines = ["# ripdep host settings (written once by `ripdep init`; yours to edit). See docs/host-config.md."]
    for s in SETTINGS:
        lines.append("")
        lines += textwrap.wrap(s.metadata["doc"].replace("`", ""), 98, initial_indent="# ", subsequent_indent="# ")
        lines.append(f"{s.name} = {_toml(s.default)}")
    return "\n".join(lines) + "\n"


DEFAULT_TEXT = _default_text()


def markdown_table() -> str:
    """The settings table of docs/host-config.md."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {TYPE_NAMES[type(s.default)]} | `{_toml(s.default)}` | {s.metadata['doc']} |"
             for s in SETTINGS]
    return "\n".join(rows) + "\n"


def parse_host_config(data: dict[str, Any], where: str) -> HostConfig:
    """The settings in `data` (parsed TOML) over the defaults; errors name `where` and the key."""
    by_name = {s.name: s for s in SETTINGS}
    for key, value in data.items():
        if key not in by_name:
            raise BadInput(f"{where}: unknown key '{key}'", hint="docs/host-config.md lists the settings")
        kind = type(by_name[key].default)
        if not isinstance(value, kind) or isinstance(value, bool):  # TOML's true is an int to Python
            raise BadInput(f"{where}: '{key}' must be {kind.__name__}")
        check = by_name[key].metadata["check"]
        problem = check(value) if check else None
        if problem:
            raise BadInput(f"{where}: '{key}' {problem}")
    config = HostConfig(**data)
    if not 1024 < config.port_min <= config.port_max < 65536:
        raise BadInput(f"{where}: need 1024 < port_min <= port_max < 65536")
    return config


def load_host_config(paths: Paths = PATHS) -> HostConfig:
    try:
        data = tomllib.loads(paths.host_config.read_text())
    except FileNotFoundError:
        raise PreconditionFailed(f"{paths.host_config} is missing: this host is not initialised",
                                 hint="run: sudo ripdep init") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{paths.host_config} is not valid TOML: {e}") from None
    return parse_host_config(data, str(paths.host_config))


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table(), end="")
    elif sys.argv[1:] == ["--default"]:
        print(DEFAULT_TEXT, end="")
    else:
        sys.exit("usage: python -m ripdep.hostconfig --markdown | --default")
