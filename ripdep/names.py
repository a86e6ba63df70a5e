"""The security boundary for everything that ends up in a unit file, a Caddyfile, SQL or argv.

Every check rejects; nothing is silently rewritten. Callers get a BadInput naming what was wrong.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from ripdep.errors import BadInput

APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# RFC 1123 host names, lower case only, at least one dot; no wildcards, ports or schemes
HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
URL_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
MAX_URL_PATH = 1024
# Linux refuses exec (E2BIG) for any one argv or env string over 128 KiB and for argv + env over
# about 2 MiB; ripdep stays well below both so a value it accepts always reaches the app.
MAX_ENV_VALUE = 32 * 1024  # bytes of one env value or secret

# closed list: system accounts and service names an app must never take over
RESERVED_NAMES = frozenset(
    """root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats
    nobody nogroup _apt messagebus postgres postgresql caddy sshd ssh systemd ripdep admin sudo
    adm wheel staff users tty disk kmem dialout cdrom floppy audio video plugdev netdev operator
    shadow utmp tape voice src sasl input sgx kvm render lpadmin polkitd dbus syslog tss uuidd
    dnsmasq avahi ntp chrony www http nginx apache mysql redis template0 template1 public
    pg-database-owner ripdep-apps list
    fleet notify""".split()  # ripdep-fleet.service, ripdep-notify.service: ripdep init's root units
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
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadInput(f"{where}: is not valid UTF-8") from None
    if size > MAX_ENV_VALUE:
        raise BadInput(f"{where}: is {size} bytes, more than the {MAX_ENV_VALUE} an environment value may hold "
                       "here (exec fails at 128 KiB)", hint="put large data in a file in the app's code or state")
    return value


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


def check_host_name(host: str, where: str) -> str:
    # an IP literal or localhost is what the path-route site and the health checks answer to
    # (http://127.0.0.1/APP/): a host route for it would take over every path route
    if isinstance(host, str) and (_ip_literal(host) or host.lower().rstrip(".") == "localhost"):
        raise BadInput(f"{where}: {host!r} is an IP address or localhost, not a host name",
                       hint="host routes need a DNS name such as shop.example.com; use route.path otherwise")
    if not isinstance(host, str) or len(host) > 253 or "." not in host:
        raise BadInput(f"{where}: invalid host name {host!r}", hint="a DNS name such as shop.example.com")
    labels = host.split(".")
    if not all(HOST_LABEL.fullmatch(label) for label in labels):
        raise BadInput(
            f"{where}: invalid host name {host!r}",
            hint="lower-case letters, digits, '-' and '.', no scheme, port or wildcard",
        )
    if labels[-1].isdigit():
        # no top-level domain is all digits: this is an address in dotted form (10.1, 127.0.0.1)
        raise BadInput(f"{where}: {host!r} is an IP address, not a host name",
                       hint="host routes need a DNS name such as shop.example.com; use route.path otherwise")
    return host


def _site_hosts(site: str) -> list[str]:
    """The host part of each address in a Caddy site address line (":80", "localhost:80",
    "http://example.com", "a.example.com, b.example.com"); "" for an address that matches any host."""
    out = []
    for address in re.split(r"[,\s]+", site.strip()):
        if not address:
            continue
        address = re.sub(r"^[a-z][a-z0-9+.-]*://", "", address.lower()).split("/", 1)[0]
        if address.startswith("["):  # [::1]:80
            address = address[1:].split("]", 1)[0]
        elif address.count(":") == 1:  # host:port or :port
            address = address.split(":", 1)[0]
        out.append(address.rstrip("."))
    return out


def check_host_not_site(host: str, site: str, where: str = "manifest key 'route.host'") -> str:
    """Refuse a host route whose name is (or matches) an address of the path-route site
    (host config caddy_path_site): its site block would take over every path route."""
    name = host.lower().rstrip(".")
    for address in _site_hosts(site):
        if not address:
            continue  # a site for every host (":80"): a host route only takes its own name
        if address.startswith("*."):  # Caddy's wildcard stands for exactly one label
            matches = name.partition(".")[2] == address[2:]
        else:
            matches = name == address
        if matches:
            raise BadInput(f"{where}: {host!r} is an address of the path-route site {site!r}",
                           hint="path routes would stop working; pick another host name or use route.path")
    return host


def check_url_path(path: str, where: str) -> str:
    # "." and ".." segments are normalised away by clients and Caddy, so the route or health
    # path would never match what is requested
    if (not isinstance(path, str) or len(path) > MAX_URL_PATH or not URL_PATH.fullmatch(path) or "//" in path
            or any(segment in (".", "..") for segment in path.split("/"))):
        raise BadInput(
            f"{where}: invalid path {path!r}",
            hint="an absolute URL path of letters, digits and . _ ~ / - (no . or .. segments), e.g. /healthz",
        )
    return path


def check_plain_text(value: str, where: str) -> str:
    """One line of printable text (argv words, paths): no control characters at all, and none of
    the Unicode line and paragraph separators some readers also split lines on."""
    if not isinstance(value, str):
        raise BadInput(f"{where}: must be a string, not {type(value).__name__}")
    if not value or any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in value):
        raise BadInput(f"{where}: must be non-empty and contain no control characters (newline, tab, NUL)")
    return value
