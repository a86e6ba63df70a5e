"""Off-host copies of verified backups in S3 (boto3 is imported here and only here).

Layout: s3://BUCKET/PREFIX/APP/<backup name>/<file>; VERIFIED.toml is uploaded last, so a remote
copy without it is incomplete.
"""

from __future__ import annotations

import os
from pathlib import Path

from ripdep.errors import PreconditionFailed
from ripdep.hostconfig import HostConfig


def _client(host: HostConfig):
    import boto3

    return boto3.client("s3", region_name=host.s3_region or None, endpoint_url=host.s3_endpoint or None)


def _errors():
    import botocore.exceptions as bx

    return (bx.BotoCoreError, bx.ClientError)


def _key(host: HostConfig, app: str, *parts: str) -> str:
    return "/".join([host.s3_prefix.strip("/"), app, *parts]).lstrip("/")


def upload(folder: Path, app: str, host: HostConfig) -> str:
    client = _client(host)
    files = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            files.append(Path(dirpath, name).relative_to(folder))
    files.sort(key=lambda rel: str(rel) == "VERIFIED.toml")  # last
    try:
        for rel in files:
            client.upload_file(str(folder / rel), host.s3_bucket, _key(host, app, folder.name, str(rel)))
    except _errors() as e:
        raise PreconditionFailed(f"upload of backup {folder.name} to s3://{host.s3_bucket} failed: {e}",
                                 hint="the local backup is complete and verified") from None
    return f"s3://{host.s3_bucket}/{_key(host, app, folder.name)}/"


def remote_backups(app: str, host: HostConfig) -> dict[str, dict]:
    """name -> {"url", "complete", "size_bytes"} for each backup of the app in the bucket."""
    import tomllib

    client = _client(host)
    found: dict[str, dict] = {}
    prefix = _key(host, app) + "/"
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=host.s3_bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name, _, rel = obj["Key"][len(prefix):].partition("/")
                entry = found.setdefault(name, {"url": f"s3://{host.s3_bucket}/{prefix}{name}/", "verified": None,
                                                "size_bytes": 0})
                entry["size_bytes"] += obj["Size"]
                if rel == "VERIFIED.toml":
                    body = client.get_object(Bucket=host.s3_bucket, Key=obj["Key"])["Body"].read()
                    entry["verified"] = bool(tomllib.loads(body.decode()).get("ok"))
    except _errors() as e:
        raise PreconditionFailed(f"cannot list s3://{host.s3_bucket}/{prefix}: {e}") from None
    return found
