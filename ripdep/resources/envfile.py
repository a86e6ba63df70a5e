"""secret:NAME/KEY and env:NAME — secrets resolved into the store, then the root-only env file.

Generated secrets are created once with a CSPRNG and kept. SSM-sourced ones are fetched during
planning (so a fetch failure stops the run before anything changes) and written only when the value
differs from the store (compare, never rewrite).
"""

from __future__ import annotations

from ripdep import render
from ripdep.context import Context
from ripdep.host import fs
from ripdep.resources import Change, Step
from ripdep.resources.file import DesiredFile, plan_file
from ripdep.secret import Secret, generate, read_store, write_secret


def resolve_secrets(ctx: Context) -> tuple[dict[str, Secret], list[Change]]:
    """Every declared secret's value, and the store writes needed to keep it."""
    folder = ctx.paths.secrets(ctx.app)
    stored = read_store(folder)
    wanted: dict[str, Secret] = {}
    changes: list[Change] = []
    ssm_values = {}
    if any(s.kind == "ssm" for s in ctx.spec.secrets.values()) or ctx.spec.secrets_from:
        from ripdep.ssm import fetch_for_app  # boto3 is imported only on this path

        ssm_values = fetch_for_app(ctx.spec, ctx.host)
    for key, source in ctx.spec.secrets.items():
        if source.kind == "generate":
            wanted[key] = stored.get(key) or generate()
        else:
            wanted[key] = ssm_values[key]
    for key, value in ssm_values.items():
        wanted.setdefault(key, value)
    for key, value in sorted(wanted.items()):
        if stored.get(key) != value:
            action = "create" if key not in stored else "update"
            changes.append(Change(f"secret:{ctx.app}/{key}", action, f"{action} secret {key}",
                                  run=lambda key=key, value=value: write_secret(folder, key, value)))
    return wanted, changes


def plan(ctx: Context) -> list[Step]:
    secrets, secret_changes = resolve_secrets(ctx)
    ctx.secrets = secrets
    env = render.app_environment(ctx.spec, ctx.port)
    text = render.render_env_file(ctx.app, env, {k: v.reveal() for k, v in secrets.items()})
    ctx.env_text = text
    masked = render.mask_env_file(text, set(secrets))
    want = DesiredFile(ctx.paths.env_file(ctx.app), text.encode(), 0o600,
                       marker=render.MARKER.format(app=ctx.app), masked=masked.encode())
    fs_ensure = lambda: fs.ensure_dir(ctx.paths.env_root, mode=0o700)  # noqa: E731
    env_changes = plan_file(f"env:{ctx.app}", want,
                            current_masked=lambda cur: render.mask_env_file(cur.content.decode(), set(secrets)).encode())
    for c in env_changes:
        write = c.run
        c.run = lambda write=write: (fs_ensure(), write())
    return [Step(f"secrets:{ctx.app}", secret_changes, f"{len(secrets)} secret(s)"), Step(f"env:{ctx.app}", env_changes)]
