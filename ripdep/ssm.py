"""Secrets from AWS SSM Parameter Store (boto3 is imported here and only here).

Parameter names map to env names predictably: for a single parameter, the manifest's key; for a
path (`secrets_from = ["ssm:/ripdep/shop-a/"]`), the name below the path, upper-cased, with '/',
'-' and '.' turned into '_' (`/ripdep/shop-a/db/password` -> `DB_PASSWORD`).
"""

from __future__ import annotations

import re

from ripdep import names
from ripdep.errors import BadInput, PreconditionFailed
from ripdep.hostconfig import HostConfig
from ripdep.secret import Secret
from ripdep.spec import RESERVED_ENV, AppSpec


def env_name(path: str, parameter: str) -> str:
    """The variable a parameter below `path` becomes. Whoever can create parameters there chooses
    it, so it is refused unless it is a plain variable name that ripdep does not set itself."""
    if not parameter.startswith(path):
        raise BadInput(f"SSM returned parameter {parameter}, which is not below {path}")
    name = re.sub(r"[/\-.]", "_", parameter[len(path):]).upper()
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
        raise BadInput(f"SSM parameter {parameter} maps to {name!r}, which is not a valid variable name",
                       hint="rename the parameter; nothing was changed")
    if name in RESERVED_ENV:
        raise BadInput(f"SSM parameter {parameter} maps to {name}, which is set by ripdep and cannot be overridden",
                       hint="rename the parameter; nothing was changed")
    return name


def _value(name: str, value: str) -> Secret:
    """A parameter's value, held to the rules of any env value (never shown in the message)."""
    return Secret(names.check_env_value(value, f"SSM parameter {name}"))


def _client(host: HostConfig):
    import boto3

    return boto3.client("ssm", region_name=host.ssm_region or None, endpoint_url=host.ssm_endpoint or None)


def fetch_for_app(spec: AppSpec, host: HostConfig) -> dict[str, Secret]:
    import botocore.exceptions as bx

    # an "ssm" source always has its parameter name (spec._secrets); the test narrows the type
    singles = {key: s.ssm_name for key, s in spec.secrets.items() if s.kind == "ssm" and s.ssm_name is not None}
    try:
        client = _client(host)
        values = _get_parameters(client, singles)
        for path in spec.secrets_from:
            for key, value in _get_path(client, path).items():
                if key in values or key in spec.secrets or key in spec.env:
                    raise BadInput(f"SSM path {path} yields {key}, which is already set by the manifest")
                values[key] = value
    except bx.NoRegionError:
        raise PreconditionFailed("no AWS region for SSM", hint="set ssm_region in /etc/ripdep/ripdep.toml or AWS_REGION") from None
    except bx.NoCredentialsError:
        raise PreconditionFailed("no AWS credentials for SSM",
                                 hint="give the host an instance role or set AWS credentials for root") from None
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as e:
        raise PreconditionFailed(f"cannot reach SSM: {e}", hint="nothing was changed; the app keeps its old values") from None
    except bx.ClientError as e:
        raise PreconditionFailed(f"SSM refused the request: {e.response['Error'].get('Code')}: "
                                 f"{e.response['Error'].get('Message')}") from None
    return values


def _get_parameters(client, singles: dict[str, str]) -> dict[str, Secret]:
    out: dict[str, Secret] = {}
    items = sorted(singles.items())
    for i in range(0, len(items), 10):  # GetParameters takes at most 10 names
        batch = dict(items[i:i + 10])
        reply = client.get_parameters(Names=list(batch.values()), WithDecryption=True)
        if reply.get("InvalidParameters"):
            raise PreconditionFailed(f"SSM parameter {reply['InvalidParameters'][0]} does not exist",
                                     hint="create it (aws ssm put-parameter) or fix the manifest; nothing was changed")
        by_name = {p["Name"]: p["Value"] for p in reply["Parameters"]}
        out.update({key: _value(name, by_name[name]) for key, name in batch.items()})
    return out


def _get_path(client, path: str) -> dict[str, Secret]:
    out = {}
    pages = client.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True, WithDecryption=True)
    for page in pages:  # at most 10 per page: always paginate
        for p in page["Parameters"]:
            key = env_name(path, p["Name"])
            if key in out:  # /a/db-url and /a/db_url: one would silently replace the other
                raise BadInput(f"SSM path {path} yields {key} twice (from {p['Name']} and another parameter)",
                               hint="rename one of them; nothing was changed")
            out[key] = _value(p["Name"], p["Value"])
    if not out:
        raise PreconditionFailed(f"SSM path {path} holds no parameters", hint="nothing was changed")
    return out
