"""The app manifest: loading, validation, and every name derived from it.

A manifest is the operator's TOML file (docs/manifest.md). Validation happens here, before the host
is touched; unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ripdep import names
from ripdep.errors import BadInput
from ripdep.paths import PATHS

PROFILES = ("strict", "jit")
SSM_NAME = re.compile(r"/[A-Za-z0-9_.\-/]+")
MEMORY = re.compile(r"[1-9][0-9]{0,19}[KMGT]?|infinity")
CPU = re.compile(r"[1-9][0-9]{0,4}%")
GENERATE = "generate"
STORED = "stored"  # set by the operator with `ripdep secret set`, kept only in the secrets store
DELIVERIES = ("env", "credentials")
RESERVED_ENV = frozenset({"PORT", "HOST", "MOUNT_PATH", "DATABASE_URL", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                          "CONFIG_DIRECTORY"})
HEALTH_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# headers the health check sets itself (or that would change how the answer is framed)
HEALTH_OWN_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "user-agent"})
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
MAX_HEALTH_BODY = 16 * 1024
# a file name in [files]: what the app finds in $CONFIG_DIRECTORY
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
FILE_KEYS = {"template", "secrets"}
# [processes] NAME and [cron] NAME: a word that becomes part of unit names (ripdep-APP.NAME.service,
# ripdep-APP.job.NAME.timer): no dots, so no name can be another's; not the web process's own parts
PROCESS_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
RESERVED_PROCESS_NAMES = frozenset({"proxy", "job", "web", "app", "service", "socket", "timer", "backup"})
PROCESS_KEYS = {"start", "count", "limits"}
JOB_KEYS = {"schedule", "run", "timeout"}
MAX_PROCESS_COUNT = 16
DEFAULT_JOB_TIMEOUT = 3600  # seconds a scheduled job may run before systemd stops it
# ${NAME} in a start word: systemd puts the variable's value there (one word, whitespace kept);
# $$ is a literal $, and so is any other $
START_VARIABLE = re.compile(r"\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)?")

# Every manifest key, in one place: the parser refuses any other, and tests/unit/test_spec.py
# checks these against the key table in docs/manifest.md (a row per key, TABLE.KEY for a table's
# keys) and against the fields of AppSpec, Route, Limits and Backup.
SCALAR_KEYS = {"source", "start", "health", "database", "database_locale", "profile", "secrets_from", "delivery",
               "release", "metrics"}
TABLE_KEYS = {  # [table] -> its keys
    "route": {"path", "host", "tls"},
    "limits": {"memory", "cpu", "tasks"},
    "backup": {"schedule", "keep"},
    "network": {"egress"},
    "health": {"path", "method", "body", "headers", "status", "contains"},  # or health = "/path"
    "releases": {"keep", "watch"},
}
FREE_TABLES = {"env", "secrets", "files", "processes", "cron"}  # tables whose keys the operator names (env.KEY, secrets.KEY)
TOP_KEYS = SCALAR_KEYS | set(TABLE_KEYS) | FREE_TABLES
ROUTE_KEYS = TABLE_KEYS["route"]
LIMIT_KEYS = TABLE_KEYS["limits"]
BACKUP_KEYS = TABLE_KEYS["backup"]
NETWORK_KEYS = TABLE_KEYS["network"]
HEALTH_KEYS = TABLE_KEYS["health"]
RELEASES_KEYS = TABLE_KEYS["releases"]

LOCALE = re.compile(r"[A-Za-z][A-Za-z0-9_.@-]{0,63}")
# an OnCalendar= expression: letters, digits and the punctuation calendar specs use; checked again
# by `systemd-analyze calendar` before a timer is written
CALENDAR = re.compile(r"[A-Za-z0-9*:/,.~ -]{1,100}")

# systemd reads these characters at the start of ExecStart= as prefixes, in any combination:
# "+" runs the command as root outside the sandbox, "!"/"!!" without the user switch, "@" replaces
# argv[0], "-" ignores failure, ":" turns off variable expansion. No program name starts with one.
SYSTEMD_PREFIXES = "+!@-:"
# Sizes that keep exec working (Linux: 128 KiB per string, ~2 MiB for argv + env together) with
# room for what ripdep and systemd add; a value past them would be accepted and then break the app.
MAX_ARG_WORD = 4 * 1024  # bytes of one start word
MAX_START = 32 * 1024  # bytes of the whole start command line
MAX_ENV_TOTAL = 256 * 1024  # bytes of all env keys and values of the manifest
MAX_MANIFEST = 1024 * 1024  # bytes of the manifest file
# tomllib's time and memory grow with the square of a dotted key's length ("a.b.c...= 1" with 10,000
# parts takes 400 MB), in keys, [table] headers and inline tables alike. No manifest key has more
# than two parts, so a longer run of dot-joined words is refused before parsing. Strings and comments
# are matched whole and skipped (dots in values do not count). Possessive quantifiers and exclusive
# alternatives keep the scan linear (no possessive groups: Python 3.11.2 mis-matches those).
_BASIC = r'(?<!\\)"(?:[^"\\\n]|\\.)*"'  # never from an escaped quote: no rescans of a bad line
_LITERAL = r"'[^'\n]*+'"
_KEY_PART = rf"(?:[\w-]++|{_BASIC}|{_LITERAL})"
_TOKENS = re.compile(
    rf"((?<![\w-]){_KEY_PART}(?:[ \t]*+\.[ \t]*+{_KEY_PART})+)"  # group 1: a dotted run
    rf'|(?<!\\)"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^\']|\'(?!\'\'))*\'\'\'|{_BASIC}|{_LITERAL}|#[^\n]*+')
MAX_KEY_DOTS = 63
MIN_MEMORY = 16 * 1024 * 1024  # limits.memory below this cannot start a process, let alone an app
MEMORY_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}  # systemd's, base 1024

# An app's `source` is copied, readable by the app, into its code folder: never from these folders
# or from a folder that contains one (so not "/", "/var" or "/srv" either). ripdep's own hold the
# host config and every app's secrets, state, code and backups; the system's hold credentials, keys,
# other services' data and kernel interfaces.
FORBIDDEN_SOURCES = tuple(Path(p) for p in (
    PATHS.host_config.parent, PATHS.state_root.parent, PATHS.code_root, PATHS.backups_root, PATHS.locks.parent,
    "/etc", "/boot", "/proc", "/sys", "/dev", "/run", "/var/lib", "/var/backups", "/var/log", "/var/spool",
    "/var/mail",
))
# Folders that hold many users' or programs' files at once: refused themselves, fine below. A home
# folder (/root, /home/NAME) is refused itself, and so is any hidden folder on the way (.ssh, .aws
# with root's AWS credentials, .gnupg, .config): a checkout such as /root/src/app stays fine.
FORBIDDEN_SOURCE_ROOTS = tuple(Path(p) for p in ("/root", "/home", "/usr", "/opt", "/tmp", "/var/tmp", "/mnt",
                                                 "/media"))


@dataclass(frozen=True)
class Route:
    path: str | None  # "/NAME/" style mount on the path-route site, or None for a host route
    host: str | None
    tls: bool = False


@dataclass(frozen=True)
class Limits:
    memory: str | None = None  # MemoryMax=
    cpu: str | None = None  # CPUQuota=
    tasks: int | None = None  # TasksMax=


@dataclass(frozen=True)
class Backup:
    schedule: str | None = None  # OnCalendar= of the backup timer; None = no scheduled backups
    keep: int | None = None  # verified backups kept (None = the host's backup_keep)


@dataclass(frozen=True)
class Releases:
    keep: int | None = None  # releases kept (None = the host's releases_keep)
    watch: int | None = None  # seconds a new release is watched (None = the host's releases_watch)


@dataclass(frozen=True)
class Health:
    """The health check's request and what counts as healthy."""

    path: str = "/"
    method: str = "GET"
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None  # the one status that is healthy; None = any 2xx or 3xx
    contains: str | None = None  # a text the answer's body must contain

    def healthy(self, status: int) -> bool:
        return status == self.status if self.status is not None else 200 <= status < 400

    def describe(self) -> str:
        return f"{self.method} {self.path}" + (f" -> {self.status}" if self.status else "") + \
            (f" containing {self.contains!r}" if self.contains else "")


@dataclass(frozen=True)
class ConfigFile:
    """A file rendered from a template in the app's source into $CONFIG_DIRECTORY."""

    template: str  # path relative to the source folder
    secrets: bool = False  # may the template put secret values in (secret("KEY"))?


@dataclass(frozen=True)
class Process:
    """A long-running process beside the web one: same user, env, secrets, state and sandbox."""

    start: tuple[str, ...]
    count: int = 1
    limits: Limits | None = None  # None: the app's [limits]


@dataclass(frozen=True)
class Job:
    """A scheduled job: a timer and a oneshot service in the app's sandbox."""

    schedule: str  # OnCalendar=
    run: tuple[str, ...]
    timeout: int = DEFAULT_JOB_TIMEOUT  # seconds (TimeoutStartSec= of the oneshot)


@dataclass(frozen=True)
class SecretSource:
    """Where one declared secret comes from: generated once, or an SSM parameter."""

    kind: str  # "generate" | "stored" | "ssm"
    ssm_name: str | None = None


@dataclass(frozen=True)
class AppSpec:
    name: str
    manifest_path: Path
    source: Path
    start: tuple[str, ...]
    health: Health = field(default_factory=Health)
    database: bool = True
    database_locale: str | None = None  # LOCALE of the app's database (None = the cluster's default)
    profile: str = "strict"
    route: Route = field(default_factory=lambda: Route(None, None))
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretSource] = field(default_factory=dict)
    secrets_from: tuple[str, ...] = ()
    delivery: str = "env"  # how secrets reach the app: the env file, or systemd credentials
    limits: Limits = field(default_factory=Limits)
    backup: Backup = field(default_factory=Backup)
    # network.egress: addresses the app may reach; empty = its own network namespace, no egress
    egress: tuple[str, ...] = ()
    files: dict[str, ConfigFile] = field(default_factory=dict)  # name in $CONFIG_DIRECTORY -> template
    processes: dict[str, Process] = field(default_factory=dict)
    cron: dict[str, Job] = field(default_factory=dict)
    release: tuple[str, ...] = ()  # the release phase: run once per release, before the switch
    releases: Releases = field(default_factory=Releases)
    metrics: str | None = None  # the path where the app serves Prometheus metrics (docs/fleet.md)

    @property
    def user(self) -> str:
        return self.name

    @property
    def role(self) -> str:
        return self.name

    @property
    def database_name(self) -> str:
        return self.name

    @property
    def mount_path(self) -> str:
        """What the app is told its URL prefix is ("" for a host route)."""
        return self.route.path.rstrip("/") if self.route.path else ""

    @property
    def url(self) -> str:
        """Where the app answers through Caddy, as seen from the VM itself."""
        if self.route.host:
            return f"{'https' if self.route.tls else 'http'}://{self.route.host}/"
        return f"http://127.0.0.1{self.route.path}"

    def health_target(self, socket: str) -> tuple[int | str, str, str | None]:
        """(port or unix socket, path, Host header) of the health check: through Caddy on :80, or,
        for a TLS host route (no certificate can be assumed on the VM itself), on the app's own
        proxy socket (its port is inside its own network namespace)."""
        if self.route.host and self.route.tls:
            return socket, self.health.path, None
        return 80, self.mount_path + self.health.path, self.route.host


def _type_error(key: str, want: str, value) -> BadInput:
    return BadInput(f"manifest key '{key}': expected {want}, got {type(value).__name__}")


def _get(table: dict, key: str, kind, want: str, prefix: str = ""):
    value = table.get(key)
    if value is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _type_error(prefix + key, want, value)
    if kind is int and value is not None and not -2 ** 63 <= value < 2 ** 63:  # TOML's integers are 64-bit
        raise BadInput(f"manifest key '{prefix}{key}': expected {want}, got a number out of range")
    return value


def _text(table: dict, key: str, want: str, prefix: str = "") -> str | None:
    """A string key that is absent (the default) or says something: "" is an error, never the default."""
    value = _get(table, key, str, want, prefix)
    if value == "":
        raise BadInput(f"manifest key '{prefix}{key}' is empty", hint="leave the key out to get the default")
    return value


def _unknown(table: dict, allowed: set[str], prefix: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise BadInput(
            f"manifest: unknown key '{prefix}{extra[0]}'",
            hint=f"allowed here: {', '.join(sorted(allowed))} (docs/manifest.md)",
        )


def _start(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as e:
            raise BadInput(f"manifest key '{where}': {e}") from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        argv = list(value)
    else:
        raise _type_error(where, "a string or a list of strings", value)
    if not argv:
        raise BadInput(f"manifest key '{where}' is empty")
    for word in argv:
        names.check_plain_text(word, f"manifest key '{where}'")
        if len(word.encode()) > MAX_ARG_WORD:
            raise BadInput(f"manifest key '{where}': a word of {len(word.encode())} bytes is longer than {MAX_ARG_WORD}")
    if argv[0][0] in SYSTEMD_PREFIXES:
        raise BadInput(f"manifest key '{where}': {argv[0]!r} starts with {argv[0][0]!r}, which systemd reads as an "
                       f"ExecStart= prefix (any of {' '.join(SYSTEMD_PREFIXES)}), not as part of the program",
                       hint='name the program by its path, e.g. "/usr/bin/python3" or "./run.sh"')
    total = sum(len(word.encode()) + 1 for word in argv)
    if total > MAX_START:
        raise BadInput(f"manifest key '{where}': the command line is {total} bytes, more than {MAX_START}")
    return tuple(argv)


def _source(value: str, base: Path) -> Path:
    """The source folder, absolute and with links resolved; refused when it is inside, or holds, a
    folder an app must not read (checked as written and as resolved, so a link cannot hide it)."""
    names.check_plain_text(value, "manifest key 'source'")
    given = Path(os.path.normpath(base / value))
    resolved = given.resolve()
    for path in dict.fromkeys((given, resolved)):
        for folder in FORBIDDEN_SOURCES:
            if path.is_relative_to(folder):
                problem = f"is inside {folder}"
            elif folder.is_relative_to(path):
                problem = f"holds {folder}"
            else:
                continue
            raise BadInput(f"manifest key 'source': {value!r} ({path}) {problem}, which an app must never "
                           "receive as its code", hint="point source at the folder with the app's own code")
        if path in FORBIDDEN_SOURCE_ROOTS or path.parent == Path("/home"):
            raise BadInput(f"manifest key 'source': {value!r} ({path}) holds other users' or programs' files",
                           hint="point source at the folder with the app's own code")
        if any(part.startswith(".") for part in path.parts):
            raise BadInput(f"manifest key 'source': {value!r} ({path}) is in a hidden folder, where keys and "
                           "credentials live", hint="point source at the folder with the app's own code")
    return resolved


def _route(table: dict, app: str) -> Route:
    _unknown(table, ROUTE_KEYS, "route.")
    path = _text(table, "path", "a string", "route.")
    host = _text(table, "host", "a string", "route.")
    tls = _get(table, "tls", bool, "true or false", "route.") or False
    if path and host:
        raise BadInput("manifest: set either route.path or route.host, not both")
    if host:
        return Route(None, names.check_host_name(host, "manifest key 'route.host'"), tls)
    if tls:
        raise BadInput("manifest key 'route.tls' needs route.host (path routes use the path-route site)")
    path = path or f"/{app}/"
    names.check_url_path(path, "manifest key 'route.path'")
    if path == "/" or not path.endswith("/"):
        raise BadInput(f"manifest key 'route.path': {path!r} must be a sub-path ending in '/', e.g. /{app}/")
    return Route(path, None)


def _network(table: dict) -> tuple[str, ...]:
    """[network] egress = ["192.0.2.10", "2001:db8::/64"]: normalised networks for IPAddressAllow=."""
    import ipaddress

    _unknown(table, NETWORK_KEYS, "network.")
    egress = _get(table, "egress", list, "a list of IP addresses or networks", "network.") or []
    out = []
    for value in egress:
        if not isinstance(value, str):  # ip_network() takes integers (and so booleans) as addresses
            raise _type_error("network.egress", "a list of strings such as \"192.0.2.10\"", value)
        try:
            out.append(ipaddress.ip_network(value, strict=False).with_prefixlen)
        except (TypeError, ValueError):
            raise BadInput(f"manifest key 'network.egress': {value!r} is not an IP address or network "
                           "like 192.0.2.10 or 2001:db8::/64 (host names are resolved by no one here)") from None
    if "egress" in table and not out:
        raise BadInput("manifest key 'network.egress' is empty: leave it out for no egress at all")
    return tuple(dict.fromkeys(out))


def _limits(table: dict) -> Limits:
    _unknown(table, LIMIT_KEYS, "limits.")
    memory = _text(table, "memory", "a string such as \"256M\"", "limits.")
    cpu = _text(table, "cpu", "a string such as \"50%\"", "limits.")
    tasks = _get(table, "tasks", int, "an integer", "limits.")
    if memory is not None and not MEMORY.fullmatch(memory):
        raise BadInput(f"manifest key 'limits.memory': {memory!r} is not a size like 256M, 1G or infinity")
    if memory is not None and memory != "infinity":
        size = int(memory.rstrip("KMGT")) * MEMORY_UNITS[memory.lstrip("0123456789")]
        if size < MIN_MEMORY:
            raise BadInput(f"manifest key 'limits.memory': {memory!r} is less than the minimum of 16M")
        if size >= 2 ** 64:
            raise BadInput(f"manifest key 'limits.memory': {memory!r} is larger than systemd accepts; use infinity")
    if cpu is not None and not CPU.fullmatch(cpu):
        raise BadInput(f"manifest key 'limits.cpu': {cpu!r} is not a percentage like 50% or 200%")
    if tasks is not None and not 1 <= tasks <= 1_000_000:
        raise BadInput(f"manifest key 'limits.tasks': {tasks} is out of range 1..1000000")
    return Limits(memory, cpu, tasks)


def _backup(table: dict) -> Backup:
    _unknown(table, BACKUP_KEYS, "backup.")
    schedule = _text(table, "schedule", "a string such as \"daily\"", "backup.")
    keep = _get(table, "keep", int, "an integer", "backup.")
    if schedule is not None:
        _calendar(schedule, "manifest key 'backup.schedule'")
    if keep is not None and not 1 <= keep <= 1000:
        raise BadInput(f"manifest key 'backup.keep': {keep} is out of range 1..1000")
    return Backup(schedule, keep)


def _ssm(value: str, where: str) -> str:
    name = value[len("ssm:"):]
    if not SSM_NAME.fullmatch(name) or "//" in name:
        raise BadInput(f"{where}: {value!r} is not an SSM parameter name like ssm:/ripdep/app/key")
    return name


def _secrets(table: dict) -> dict[str, SecretSource]:
    out = {}
    for key, value in table.items():
        where = f"manifest key 'secrets.{key}'"
        names.check_env_key(key, where)
        if value in (GENERATE, STORED):
            out[key] = SecretSource(value)
        elif isinstance(value, str) and value.startswith("ssm:"):
            name = _ssm(value, where)
            if name.endswith("/"):
                raise BadInput(f"{where}: a path ({value}) belongs in secrets_from, a single parameter here")
            out[key] = SecretSource("ssm", name)
        else:
            raise BadInput(f"{where}: expected \"generate\", \"stored\" or \"ssm:/parameter/name\"")
    return out


def _metrics(path: str | None) -> str | None:
    return None if path is None else names.check_url_path(path, "manifest key 'metrics'")


def _health(value) -> Health:
    """health = "/path", or a [health] table: method, body, headers, the expected status and text."""
    if isinstance(value, str) or value is None:
        path = _text({"health": value}, "health", "a string or a table")
        return Health(names.check_url_path(path, "manifest key 'health'") if path else "/")
    if not isinstance(value, dict):
        raise _type_error("health", "a path such as \"/healthz\" or a table", value)
    _unknown(value, HEALTH_KEYS, "health.")
    path = _text(value, "path", "a string", "health.") or "/"
    names.check_url_path(path, "manifest key 'health.path'")
    method = _text(value, "method", "a string such as \"POST\"", "health.") or "GET"
    if method not in HEALTH_METHODS:
        raise BadInput(f"manifest key 'health.method': {method!r} is not one of {', '.join(HEALTH_METHODS)}")
    body = _get(value, "body", str, "a string", "health.")
    if body is not None:
        names.check_env_value(body, "manifest key 'health.body'")
        if len(body.encode()) > MAX_HEALTH_BODY:
            raise BadInput(f"manifest key 'health.body' is longer than {MAX_HEALTH_BODY} bytes")
        if method in ("GET", "HEAD"):
            raise BadInput(f"manifest key 'health.body': a {method} request has no body",
                           hint='set health.method = "POST" (or PUT, PATCH)')
    headers = []
    for key, text in (_get(value, "headers", dict, "a table of header names and values", "health.") or {}).items():
        where = f"manifest key 'health.headers.{key}'"
        if not HEADER_NAME.fullmatch(key):
            raise BadInput(f"{where}: {key!r} is not an HTTP header name")
        if key.lower() in HEALTH_OWN_HEADERS:
            raise BadInput(f"{where}: the health check sets {key} itself",
                           hint="for a host route the Host header is route.host")
        if not isinstance(text, str):
            raise _type_error(f"health.headers.{key}", "a string", text)
        if text:
            names.check_plain_text(text, where)  # no CR or LF: a header value cannot start another header
        headers.append((key, text))
    status = _get(value, "status", int, "an HTTP status such as 200", "health.")
    if status is not None and not 100 <= status <= 599:
        raise BadInput(f"manifest key 'health.status': {status} is not an HTTP status (100..599)")
    contains = _text(value, "contains", "a string", "health.")
    if contains is not None:
        names.check_plain_text(contains, "manifest key 'health.contains'")
    return Health(path, method, body, tuple(headers), status, contains)


def _files(table: dict) -> dict[str, ConfigFile]:
    """[files] NAME = "template/in/source.j2" or { template = "...", secrets = true }."""
    out = {}
    for name, value in table.items():
        where = f"manifest key 'files.{name}'"
        if not FILE_NAME.fullmatch(name) or name in (".", ".."):
            raise BadInput(f"{where}: {name!r} is not a plain file name (letters, digits, . _ -)",
                           hint="files land in $CONFIG_DIRECTORY under this name")
        if isinstance(value, str):
            value = {"template": value}
        if not isinstance(value, dict):
            raise _type_error(f"files.{name}", "a template path or a table", value)
        _unknown(value, FILE_KEYS, f"files.{name}.")
        template = _text(value, "template", "a path inside the source folder", f"files.{name}.")
        if template is None:
            raise BadInput(f"manifest: missing key 'files.{name}.template'")
        names.check_plain_text(template, f"manifest key 'files.{name}.template'")
        parts = Path(template).parts
        if template.startswith("/") or ".." in parts:
            raise BadInput(f"manifest key 'files.{name}.template': {template!r} must be a path inside the source "
                           "folder (relative, no ..)")
        secrets = _get(value, "secrets", bool, "true or false", f"files.{name}.") or False
        out[name] = ConfigFile(template, secrets)
    return out


def _releases(table: dict) -> Releases:
    _unknown(table, RELEASES_KEYS, "releases.")
    keep = _get(table, "keep", int, "an integer", "releases.")
    watch = _get(table, "watch", int, "a number of seconds", "releases.")
    if keep is not None and not 1 <= keep <= 100:
        raise BadInput(f"manifest key 'releases.keep': {keep} is out of range 1..100")
    if watch is not None and not 0 <= watch <= 3600:
        raise BadInput(f"manifest key 'releases.watch': {watch} is out of range 0..3600 seconds")
    return Releases(keep, watch)


def _process_name(name: str, where: str) -> str:
    if not PROCESS_NAME.fullmatch(name) or name.endswith("-"):
        raise BadInput(f"{where}: {name!r} is not a name of 1-31 characters: a lower-case letter first, then a-z, "
                       "0-9 or '-'", hint="it becomes part of a unit name")
    if name in RESERVED_PROCESS_NAMES:
        raise BadInput(f"{where}: {name!r} is reserved (ripdep's own units use it)")
    return name


def _calendar(value, where: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{where}: expected a string such as \"daily\", got {type(value).__name__}")
    if not CALENDAR.fullmatch(value) or value.strip() != value:
        raise BadInput(f"{where}: {value!r} is not a calendar expression like \"daily\" or \"*-*-* 03:00:00\"")
    return value


def _processes(table: dict) -> dict[str, Process]:
    """[processes] worker = ["bin/worker"] or { start = [...], count = 2, limits = { memory = "128M" } }."""
    out = {}
    for name, value in table.items():
        where = f"manifest key 'processes.{name}'"
        _process_name(name, where)
        if not isinstance(value, dict):
            value = {"start": value}
        _unknown(value, PROCESS_KEYS, f"processes.{name}.")
        if "start" not in value:
            raise BadInput(f"manifest: missing key 'processes.{name}.start'")
        count = _get(value, "count", int, "an integer", f"processes.{name}.")
        if count is not None and not 1 <= count <= MAX_PROCESS_COUNT:
            raise BadInput(f"manifest key 'processes.{name}.count': {count} is out of range 1..{MAX_PROCESS_COUNT}")
        limits = _get(value, "limits", dict, "a table", f"processes.{name}.")
        try:
            parsed_limits = None if limits is None else _limits(limits)
        except BadInput as e:  # name the process's key, not the app's [limits]
            raise BadInput(e.message.replace("'limits.", f"'processes.{name}.limits."), hint=e.hint) from None
        out[name] = Process(_start(value["start"], f"processes.{name}.start"), count or 1, parsed_limits)
    return out


def _cron(table: dict) -> dict[str, Job]:
    """[cron] cleanup = { schedule = "daily", run = ["bin/cleanup"], timeout = 600 }."""
    out = {}
    for name, value in table.items():
        where = f"manifest key 'cron.{name}'"
        _process_name(name, where)
        if not isinstance(value, dict):
            raise _type_error(f"cron.{name}", "a table with schedule and run", value)
        _unknown(value, JOB_KEYS, f"cron.{name}.")
        for key in ("schedule", "run"):
            if key not in value:
                raise BadInput(f"manifest: missing key 'cron.{name}.{key}'")
        timeout = _get(value, "timeout", int, "a number of seconds", f"cron.{name}.")
        if timeout is not None and not 1 <= timeout <= 7 * 86400:
            raise BadInput(f"manifest key 'cron.{name}.timeout': {timeout} is out of range 1..604800 seconds")
        out[name] = Job(_calendar(value["schedule"], f"manifest key 'cron.{name}.schedule'"),
                        _start(value["run"], f"cron.{name}.run"), timeout or DEFAULT_JOB_TIMEOUT)
    return out


def start_variables(spec: AppSpec) -> set[str]:
    """What ${NAME} may name in start: what ripdep and systemd set, and the manifest's env (never a
    secret: a command line is visible in ps and in systemd's own logs)."""
    allowed = {"PORT", "HOST", "MOUNT_PATH", "STATE_DIRECTORY"} | set(spec.env)
    if spec.database:
        allowed.add("DATABASE_URL")
    if spec.delivery == "credentials" and spec.secrets:
        allowed.add("CREDENTIALS_DIRECTORY")
    if spec.files:
        allowed.add("CONFIG_DIRECTORY")
    return allowed


def _check_start_variables(spec: AppSpec) -> None:
    commands = {"start": spec.start, **({"release": spec.release} if spec.release else {}),
                **{f"processes.{n}.start": p.start for n, p in spec.processes.items()},
                **{f"cron.{n}.run": j.run for n, j in spec.cron.items()}}
    for key, argv in commands.items():
        _check_variables(spec, key, argv)


def _check_variables(spec: AppSpec, key: str, argv: tuple[str, ...]) -> None:
    allowed = start_variables(spec)
    for i, word in enumerate(argv):
        for match in START_VARIABLE.finditer(word):
            braced, bare = match.group(1), match.group(2)
            if braced is None and bare is None:
                continue  # $$ or a lone $: a literal $
            name = braced if braced is not None else bare
            if braced is not None and i == 0:
                raise BadInput(f"manifest key '{key}': the program ({word!r}) cannot hold a variable; systemd "
                               "expands them only in arguments", hint="write $${ for a literal ${")
            if name in spec.secrets:
                raise BadInput(f"manifest key '{key}': ${{{name}}} is a secret, and a command line is visible to "
                               "ps and in logs", hint="the app reads it from its environment"
                               + (" or $CREDENTIALS_DIRECTORY" if spec.delivery == "credentials" else ""))
            if bare is not None:
                if name in allowed:
                    raise BadInput(f"manifest key '{key}': write ${{{name}}} (with braces) for the value of {name}",
                                   hint=f"or $${name} for the literal text ${name}")
                continue
            if name not in allowed:
                raise BadInput(f"manifest key '{key}': ${{{name}}} is not a variable the app has",
                               hint=f"known here: {', '.join(sorted(allowed))}; write $${{ for a literal ${{")


def parse_manifest(app: str, data: dict, manifest_path: Path) -> AppSpec:
    names.check_app_name(app)
    _unknown(data, TOP_KEYS, "")
    source = _get(data, "source", str, "a string")
    if source is None:
        raise BadInput("manifest: missing key 'source'", hint="the folder with the app's code, e.g. source = \".\"")
    source_path = _source(source, manifest_path.parent)
    if "start" not in data:
        raise BadInput("manifest: missing key 'start'", hint='the command that runs the app, e.g. start = ["/usr/bin/python3", "app.py"]')
    start = _start(data["start"], "start")
    health = _health(data.get("health"))
    database = _get(data, "database", bool, "true or false")
    database_locale = _text(data, "database_locale", "a string such as \"C\" or \"en_US.UTF-8\"")
    if database_locale is not None and not LOCALE.fullmatch(database_locale):
        raise BadInput(f"manifest key 'database_locale': {database_locale!r} is not a locale name like C or en_US.UTF-8")
    profile = _text(data, "profile", "a string") or "strict"
    if profile not in PROFILES:
        raise BadInput(f"manifest key 'profile': {profile!r} is not one of {', '.join(PROFILES)}")
    env = _get(data, "env", dict, "a table") or {}
    for key, value in env.items():
        names.check_env_key(key, f"manifest key 'env.{key}'")
        if isinstance(value, int) and not isinstance(value, bool) and not -2 ** 63 <= value < 2 ** 63:
            raise BadInput(f"manifest key 'env.{key}': the number is out of TOML's 64-bit range")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        names.check_env_value(value, f"manifest key 'env.{key}'")
    env = {k: str(v) for k, v in env.items()}
    total = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in env.items())
    if total > MAX_ENV_TOTAL:
        raise BadInput(f"manifest key 'env': {total} bytes in all, more than {MAX_ENV_TOTAL}",
                       hint="put large data in a file in the app's code or state")
    secrets = _secrets(_get(data, "secrets", dict, "a table") or {})
    secrets_from = _get(data, "secrets_from", list, "a list of \"ssm:/path/\" strings") or []
    for value in secrets_from:
        where = "manifest key 'secrets_from'"
        if not isinstance(value, str) or not value.startswith("ssm:") or not _ssm(value, where).endswith("/"):
            raise BadInput(f"{where}: expected paths like \"ssm:/ripdep/{app}/\" (ending in '/')")
    clash = sorted(set(env) & set(secrets))
    if clash:
        raise BadInput(f"manifest: '{clash[0]}' is both in env and in secrets")
    reserved = sorted((set(env) | set(secrets)) & RESERVED_ENV)
    if reserved:
        raise BadInput(f"manifest: '{reserved[0]}' is set by ripdep and cannot be overridden")
    delivery = _text(data, "delivery", "a string") or "env"
    if delivery not in DELIVERIES:
        raise BadInput(f"manifest key 'delivery': {delivery!r} is not one of {', '.join(DELIVERIES)}")
    spec = AppSpec(
        name=app,
        manifest_path=manifest_path,
        source=source_path,
        start=start,
        health=health,
        database=True if database is None else database,
        database_locale=database_locale,
        profile=profile,
        route=_route(_get(data, "route", dict, "a table") or {}, app),
        env=env,
        secrets=secrets,
        secrets_from=tuple(_ssm(v, "secrets_from") for v in secrets_from),
        delivery=delivery,
        limits=_limits(_get(data, "limits", dict, "a table") or {}),
        backup=_backup(_get(data, "backup", dict, "a table") or {}),
        egress=_network(_get(data, "network", dict, "a table") or {}),
        files=_files(_get(data, "files", dict, "a table") or {}),
        processes=_processes(_get(data, "processes", dict, "a table") or {}),
        cron=_cron(_get(data, "cron", dict, "a table") or {}),
        release=_start(data["release"], "release") if "release" in data else (),
        releases=_releases(_get(data, "releases", dict, "a table") or {}),
        metrics=_metrics(_text(data, "metrics", "a path such as \"/metrics\"")),
    )
    _check_start_variables(spec)
    return spec


def _read_manifest(path: Path) -> bytes:
    """The file's bytes, refusing what is not a regular file (a FIFO would block the read, a device
    could be anything) or is too large, without ever blocking on it."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise BadInput(f"manifest {path} is not a regular file")
        # O_NONBLOCK: should a FIFO be swapped in after the stat, the open still returns at once,
        # and fstat below (on what was actually opened) refuses it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise BadInput(f"manifest {path} does not exist") from None
    except OSError as e:
        raise BadInput(f"cannot read manifest {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"manifest {path} is not a regular file")
        raw = f.read(MAX_MANIFEST + 1)
    if len(raw) > MAX_MANIFEST:
        raise BadInput(f"manifest {path} is larger than {MAX_MANIFEST // 1024} KiB")
    return raw


def load_manifest(app: str, path: Path) -> AppSpec:
    names.check_app_name(app)
    raw = _read_manifest(path)
    try:
        text = raw.decode("utf-8")
        if any((token[1] or "").count(".") > MAX_KEY_DOTS for token in _TOKENS.finditer(text)):
            raise BadInput(f"manifest {path} has a dotted key of more than {MAX_KEY_DOTS + 1} parts",
                           hint="manifest keys have at most two")
        data = tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, UnicodeDecodeError, an integer of thousands of digits
        raise BadInput(f"manifest {path} is not valid TOML: {e}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and tables
        raise BadInput(f"manifest {path} nests arrays or tables too deeply") from None
    return parse_manifest(app, data, path.resolve())
