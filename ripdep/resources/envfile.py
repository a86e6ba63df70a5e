"""secrets:NAME and env:NAME — secrets resolved into the store, then the root-only env file.

Generated secrets are created once with a CSPRNG and kept. SSM-sourced ones are fetched during
planning, before anything on the host changes (a fetch failure leaves the running app and its old
values alone), and written only when the value differs from the store (compare, never rewrite).
With `delivery = "credentials"` the env file holds no secrets: the unit loads each one from the
store with LoadCredential=.
"""

from __future__ import annotations

import hashlib

from ripdep import render
from ripdep.context import Context
from ripdep.errors import PreconditionFailed
from ripdep.resources import Action, Change, Step, WriteSecret
from ripdep.resources.file import DesiredFile, plan_file
from ripdep.secret import Secret, generate


def resolve_secrets(ctx: Context) -> tuple[dict[str, Secret], list[Change]]:
    """Every declared secret's value, and the store writes needed to keep it."""
    folder = ctx.paths.secrets(ctx.app)
    stored = ctx.host.read_store(folder)
    wanted: dict[str, Secret] = {}
    uses_ssm = any(s.kind == "ssm" for s in ctx.spec.secrets.values()) or ctx.spec.secrets_from
    if ctx.ssm_values is None:
        ctx.ssm_values = {}
        if uses_ssm:
            from ripdep.ssm import fetch_for_app  # boto3 is imported only on this path

            ctx.ssm_values = fetch_for_app(ctx.spec, ctx.settings)
    ssm_values = ctx.ssm_values
    for key, source in ctx.spec.secrets.items():
        if source.kind == "generate":
            wanted[key] = stored.get(key) or generate()
        elif source.kind == "stored":
            if key not in stored:
                raise PreconditionFailed(f"secret {key} of app {ctx.app} is declared as stored but has no value",
                                         hint=f"set it: ripdep secret set {ctx.app} {key} < file")
            wanted[key] = stored[key]
        else:
            wanted[key] = ssm_values[key]
    for key, value in ssm_values.items():
        wanted.setdefault(key, value)
    changes = []
    for key, value in sorted(wanted.items()):
        if stored.get(key) != value:
            action = Action.CREATE if key not in stored else Action.UPDATE
            changes.append(Change(f"secret:{ctx.app}/{key}", action, f"{action} secret {key}",
                                  ops=(WriteSecret(folder, key, value),)))
    return wanted, changes


def secrets_digest(secrets: dict[str, Secret]) -> str:
    """Changes when any value changes (credentials are read at start, so a new value needs a
    restart); kept only inside the root-only state's combined hash, never shown."""
    h = hashlib.sha256()
    for key, value in sorted(secrets.items()):
        h.update(key.encode() + b"\0" + value.reveal().encode() + b"\0")
    return h.hexdigest()


def plan_secrets(ctx: Context) -> Step:
    ctx.secrets, changes = resolve_secrets(ctx)
    sources = sorted({s.kind for s in ctx.spec.secrets.values()} | ({"ssm"} if ctx.spec.secrets_from else set()))
    return Step(f"secrets:{ctx.app}", changes, f"{len(ctx.secrets)} secret(s)" + (f" ({', '.join(sources)})" if sources else ""))


def plan(ctx: Context) -> Step:
    secrets = ctx.secrets if ctx.spec.delivery == "env" else {}
    env = render.app_environment(ctx.spec, ctx.allocated_port, ctx.paths)
    text = render.render_env_file(ctx.app, env, {k: v.reveal() for k, v in secrets.items()})
    ctx.env_text = text + (secrets_digest(ctx.secrets) if ctx.spec.delivery == "credentials" else "")
    keys = set(secrets)
    want = DesiredFile(ctx.paths.env_file(ctx.app), text.encode(), 0o600,
                       marker=render.MARKER.format(app=ctx.app), masked=render.mask_env_file(text, keys).encode(),
                       dirs=((ctx.paths.env_root, 0o700),))
    # In the live file, anything that is not a plain variable of the new manifest may be a secret:
    # one removed from the manifest, or every one when delivery switches to credentials.
    def current_masked(cur) -> bytes:  # only called when the file differs: the store is read then
        plain = set(env) - set(ctx.secrets) - set(ctx.host.read_store(ctx.paths.secrets(ctx.app)))
        text = cur.content.decode(errors="replace")
        try:
            live = render.parse_env_file(text)
        except (ValueError, IndexError):
            live = {}
        return render.mask_env_file(text, set(live) - plain).encode()
    return Step(f"env:{ctx.app}", plan_file(ctx.host, f"env:{ctx.app}", want, current_masked=current_masked))
