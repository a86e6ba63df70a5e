"""The app manifest: loading, validation, and every name derived from it.

A manifest is the operator's TOML file (docs/manifest.md). Validation happens here, before the host
is touched; unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ripdep import names
from ripdep.errors import BadInput

PROFILES = ("strict", "jit")
SSM_NAME = re.compile(r"/[A-Za-z0-9_.\-/]+")
MEMORY = re.compile(r"[1-9][0-9]*[KMGT]?|infinity")
CPU = re.compile(r"[1-9][0-9]{0,4}%")
GENERATE = "generate"
STORED = "stored"  # set by the operator with `ripdep secret set`, kept only in the secrets store
DELIVERIES = ("env", "credentials")
RESERVED_ENV = frozenset({"PORT", "HOST", "MOUNT_PATH", "DATABASE_URL", "CREDENTIALS_DIRECTORY"})

TOP_KEYS = {"source", "start", "health", "database", "database_locale", "profile", "route", "env", "secrets",
            "secrets_from", "delivery", "limits", "backup"}
LOCALE = re.compile(r"[A-Za-z][A-Za-z0-9_.@-]{0,63}")
BACKUP_KEYS = {"schedule", "keep"}
# an OnCalendar= expression: letters, digits and the punctuation calendar specs use; checked again
# by `systemd-analyze calendar` before a timer is written
CALENDAR = re.compile(r"[A-Za-z0-9*:/,.~ -]{1,100}")
ROUTE_KEYS = {"path", "host", "tls"}
LIMIT_KEYS = {"memory", "cpu", "tasks"}


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
    health: str = "/"
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

    def health_target(self, port: int) -> tuple[int, str, str | None]:
        """(port, path, Host header) of the health check: through Caddy on :80, or, for a TLS host
        route (no certificate can be assumed on the VM itself), on the app's own port."""
        if self.route.host and self.route.tls:
            return port, self.health, None
        return 80, self.mount_path + self.health, self.route.host


def _type_error(key: str, want: str, value) -> BadInput:
    return BadInput(f"manifest key '{key}': expected {want}, got {type(value).__name__}")


def _get(table: dict, key: str, kind, want: str, prefix: str = ""):
    value = table.get(key)
    if value is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _type_error(prefix + key, want, value)
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
    return tuple(argv)


def _route(table: dict, app: str) -> Route:
    _unknown(table, ROUTE_KEYS, "route.")
    path = _get(table, "path", str, "a string", "route.")
    host = _get(table, "host", str, "a string", "route.")
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


def _limits(table: dict) -> Limits:
    _unknown(table, LIMIT_KEYS, "limits.")
    memory = _get(table, "memory", str, "a string such as \"256M\"", "limits.")
    cpu = _get(table, "cpu", str, "a string such as \"50%\"", "limits.")
    tasks = _get(table, "tasks", int, "an integer", "limits.")
    if memory is not None and not MEMORY.fullmatch(memory):
        raise BadInput(f"manifest key 'limits.memory': {memory!r} is not a size like 256M, 1G or infinity")
    if cpu is not None and not CPU.fullmatch(cpu):
        raise BadInput(f"manifest key 'limits.cpu': {cpu!r} is not a percentage like 50% or 200%")
    if tasks is not None and not 1 <= tasks <= 1_000_000:
        raise BadInput(f"manifest key 'limits.tasks': {tasks} is out of range 1..1000000")
    return Limits(memory, cpu, tasks)


def _backup(table: dict) -> Backup:
    _unknown(table, BACKUP_KEYS, "backup.")
    schedule = _get(table, "schedule", str, "a string such as \"daily\"", "backup.")
    keep = _get(table, "keep", int, "an integer", "backup.")
    if schedule is not None and (not CALENDAR.fullmatch(schedule) or schedule.strip() != schedule):
        raise BadInput(f"manifest key 'backup.schedule': {schedule!r} is not a calendar expression like "
                       "\"daily\" or \"*-*-* 03:00:00\"")
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


def parse_manifest(app: str, data: dict, manifest_path: Path) -> AppSpec:
    names.check_app_name(app)
    _unknown(data, TOP_KEYS, "")
    source = _get(data, "source", str, "a string")
    if source is None:
        raise BadInput("manifest: missing key 'source'", hint="the folder with the app's code, e.g. source = \".\"")
    names.check_plain_text(source, "manifest key 'source'")
    if "start" not in data:
        raise BadInput("manifest: missing key 'start'", hint='the command that runs the app, e.g. start = ["/usr/bin/python3", "app.py"]')
    start = _start(data["start"], "start")
    health = _get(data, "health", str, "a string") or "/"
    names.check_url_path(health, "manifest key 'health'")
    database = _get(data, "database", bool, "true or false")
    database_locale = _get(data, "database_locale", str, "a string such as \"C\" or \"en_US.UTF-8\"")
    if database_locale is not None and not LOCALE.fullmatch(database_locale):
        raise BadInput(f"manifest key 'database_locale': {database_locale!r} is not a locale name like C or en_US.UTF-8")
    profile = _get(data, "profile", str, "a string") or "strict"
    if profile not in PROFILES:
        raise BadInput(f"manifest key 'profile': {profile!r} is not one of {', '.join(PROFILES)}")
    env = _get(data, "env", dict, "a table") or {}
    for key, value in env.items():
        names.check_env_key(key, f"manifest key 'env.{key}'")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        names.check_env_value(value, f"manifest key 'env.{key}'")
    env = {k: str(v) for k, v in env.items()}
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
    delivery = _get(data, "delivery", str, "a string") or "env"
    if delivery not in DELIVERIES:
        raise BadInput(f"manifest key 'delivery': {delivery!r} is not one of {', '.join(DELIVERIES)}")
    base = manifest_path.parent
    return AppSpec(
        name=app,
        manifest_path=manifest_path,
        source=(base / source).resolve() if not Path(source).is_absolute() else Path(source),
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
    )


def load_manifest(app: str, path: Path) -> AppSpec:
    names.check_app_name(app)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"manifest {path} does not exist") from None
    except OSError as e:
        raise BadInput(f"cannot read manifest {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadInput(f"manifest {path} is not valid TOML: {e}") from None
    return parse_manifest(app, data, path.resolve())
