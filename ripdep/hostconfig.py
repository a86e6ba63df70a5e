"""Host-wide settings: /etc/ripdep/ripdep.toml, written by `ripdep init` only when absent."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from ripdep.errors import BadInput, PreconditionFailed
from ripdep.paths import PATHS, Paths

DEFAULT_TEXT = """\
# ripdep host settings (written once by `ripdep init`; yours to edit). See docs/host-config.md.

# Loopback ports ripdep allocates to apps, one per app, stable across deploys.
port_min = 20000
port_max = 29999

# The Caddy site block (its address line, as written in /etc/caddy/Caddyfile) that carries path
# routes such as http://127.0.0.1/hello/.
caddy_path_site = ":80"

# Seconds the health check through Caddy may take after a start or restart.
health_timeout = 30

# AWS SSM Parameter Store: region and endpoint (empty = the standard AWS environment and config).
ssm_region = ""
ssm_endpoint = ""

# Backups (/var/backups/ripdep/APP/): verified backups kept per app (a manifest's [backup] keep
# overrides it), the age in seconds after which the last backup of a scheduled app counts as
# stale, and how fresh a verified backup must be for `ripdep destroy`.
backup_keep = 7
backup_stale_after = 93600
destroy_backup_max_age = 900

# Off-host copies of verified backups in S3 (empty bucket = off). Region/endpoint as for SSM.
s3_bucket = ""
s3_prefix = "ripdep"
s3_region = ""
s3_endpoint = ""
"""

KEYS = {"port_min": int, "port_max": int, "caddy_path_site": str, "health_timeout": int,
        "ssm_region": str, "ssm_endpoint": str, "backup_keep": int, "backup_stale_after": int,
        "destroy_backup_max_age": int, "s3_bucket": str, "s3_prefix": str, "s3_region": str, "s3_endpoint": str}


@dataclass(frozen=True)
class HostConfig:
    port_min: int = 20000
    port_max: int = 29999
    caddy_path_site: str = ":80"
    health_timeout: int = 30
    ssm_region: str = ""
    ssm_endpoint: str = ""
    backup_keep: int = 7
    backup_stale_after: int = 93600
    destroy_backup_max_age: int = 900
    s3_bucket: str = ""
    s3_prefix: str = "ripdep"
    s3_region: str = ""
    s3_endpoint: str = ""


def load_host_config(paths: Paths = PATHS) -> HostConfig:
    try:
        data = tomllib.loads(paths.host_config.read_text())
    except FileNotFoundError:
        raise PreconditionFailed(f"{paths.host_config} is missing: this host is not initialised",
                                 hint="run: sudo ripdep init") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{paths.host_config} is not valid TOML: {e}") from None
    for key, value in data.items():
        if key not in KEYS:
            raise BadInput(f"{paths.host_config}: unknown key '{key}'")
        if not isinstance(value, KEYS[key]) or isinstance(value, bool):
            raise BadInput(f"{paths.host_config}: '{key}' must be {KEYS[key].__name__}")
    config = HostConfig(**data)
    if not 1024 < config.port_min <= config.port_max < 65536:
        raise BadInput(f"{paths.host_config}: need 1024 < port_min <= port_max < 65536")
    return config
