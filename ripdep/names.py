"""The security boundary for everything that ends up in a unit file, a Caddyfile, SQL or argv.

Every check rejects; nothing is silently rewritten. Callers get a BadInput naming what was wrong.
"""

from __future__ import annotations

import re

from ripdep.errors import BadInput

APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# RFC 1123 host names, lower case only, at least one dot; no wildcards, ports or schemes
HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
URL_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")

# closed list: system accounts and service names an app must never take over
RESERVED_NAMES = frozenset(
    """root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats
    nobody nogroup _apt messagebus postgres postgresql caddy sshd ssh systemd ripdep admin sudo
    adm wheel staff users tty disk kmem dialout cdrom floppy audio video plugdev netdev operator
    shadow utmp tape voice src sasl input sgx kvm render lpadmin polkitd dbus syslog tss uuidd
    dnsmasq avahi ntp chrony www http nginx apache mysql redis template0 template1 public
    pg-database-owner ripdep-apps list""".split()
)
RESERVED_PREFIXES = ("systemd-", "pg-", "ripdep-")


def check_app_name(name: str) -> str:
    if not isinstance(name, str) or not APP_NAME.fullmatch(name):
        raise BadInput(
            f"invalid app name {name!r}",
            hint="use 1-31 characters: a lower-case letter first, then a-z, 0-9 or '-'",
        )
    if name.endswith("-"):
        raise BadInput(f"invalid app name {name!r}: it must not end with '-'")
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise BadInput(f"app name {name!r} is reserved", hint="pick a name that is not a system account or service")
    return name


def check_env_key(key: str, where: str) -> str:
    if not isinstance(key, str) or not ENV_KEY.fullmatch(key):
        raise BadInput(
            f"{where}: invalid variable name {key!r}",
            hint="use letters, digits and '_', not starting with a digit",
        )
    return key


def check_env_value(value: str, where: str) -> str:
    """Anything a process environment can hold: valid UTF-8 without NUL."""
    if not isinstance(value, str):
        raise BadInput(f"{where}: must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise BadInput(f"{where}: contains a NUL character, which an environment cannot hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{where}: is not valid UTF-8") from None
    return value


def check_host_name(host: str, where: str) -> str:
    if not isinstance(host, str) or len(host) > 253 or "." not in host:
        raise BadInput(f"{where}: invalid host name {host!r}", hint="a DNS name such as shop.example.com")
    labels = host.split(".")
    if not all(HOST_LABEL.fullmatch(label) for label in labels):
        raise BadInput(
            f"{where}: invalid host name {host!r}",
            hint="lower-case letters, digits, '-' and '.', no scheme, port or wildcard",
        )
    return host


def check_url_path(path: str, where: str) -> str:
    if not isinstance(path, str) or not URL_PATH.fullmatch(path) or "//" in path or "/../" in path + "/":
        raise BadInput(
            f"{where}: invalid path {path!r}",
            hint="an absolute URL path of letters, digits and . _ ~ / -, e.g. /healthz",
        )
    return path


def check_plain_text(value: str, where: str) -> str:
    """One line of printable text (argv words, paths): no control characters at all."""
    if not isinstance(value, str):
        raise BadInput(f"{where}: must be a string, not {type(value).__name__}")
    if not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadInput(f"{where}: must be non-empty and contain no control characters (newline, tab, NUL)")
    return value
