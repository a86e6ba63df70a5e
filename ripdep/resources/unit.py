"""unit:ripdep-NAME.service — the hardened unit file, verified and scored before it is written."""

from __future__ import annotations

from ripdep import render
from ripdep.context import Context
from ripdep.errors import ValidationFailed
from ripdep.resources import Record, Step
from ripdep.resources.file import DesiredFile, plan_file

MAX_EXPOSURE = {"strict": 1.5, "jit": 1.5}


EXEC_PREFIXES = "+!@-:"


def check_exec_lines(name: str, text: str) -> None:
    """The effective command lines: systemd reads `+ ! @ - :` at the start of an Exec*= value as
    prefixes (`+` runs it as root outside the sandbox). The manifest refuses them; this gate makes
    sure no rendering ever lets one through, whatever the score says."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("Exec") and value.lstrip('"')[:1] in tuple(EXEC_PREFIXES):
            raise ValidationFailed(f"unit {name}: {key}= would start with a systemd prefix; the live unit was kept",
                                   hint="the program in 'start' must not begin with + ! @ - :")


def validate_unit(host, name: str, text: str, profile: str) -> float:
    """The command-line gate, systemd-analyze verify (any stderr fails) and the exposure gate;
    returns the score."""
    check_exec_lines(name, text)
    problems, score = host.verify_unit(name, text)
    if problems or score is None:
        raise ValidationFailed(f"unit {name} failed systemd-analyze verify; the live unit was kept",
                               hint="check the manifest's start command and the template units/app.service.j2",
                               details=problems)
    if score > MAX_EXPOSURE[profile]:
        raise ValidationFailed(f"unit {name} scores {score} exposure, above {MAX_EXPOSURE[profile]} for "
                               f"profile {profile!r}; the live unit was kept",
                               hint="the template units/app.service.j2 lost hardening: see docs/hardening.md")
    return score


def verifiable(ctx: Context, text: str) -> str:
    """The unit as systemd-analyze can check it before the code is copied: a program inside the code
    folder (start = ["./run.sh"]) is looked for in the source folder the copy will come from."""
    live = render.systemd_word(f"{ctx.paths.code(ctx.app)}/")[:-1]
    return text.replace(f"ExecStart={live}", f"ExecStart={render.systemd_word(f'{ctx.spec.source}/')[:-1]}")


def plan(ctx: Context) -> Step:
    credentials = tuple(ctx.secrets) if ctx.spec.delivery == "credentials" else ()
    text = render.render_unit(ctx.spec, ctx.paths, credentials)
    ctx.unit_text = text
    want = DesiredFile(ctx.paths.unit(ctx.app), text.encode(), 0o644, marker=render.MARKER.format(app=ctx.app))
    changes = plan_file(ctx.host, f"unit:{ctx.unit_name}", want)
    note = ""
    if changes and changes[0].action != "fix":
        score = validate_unit(ctx.host, ctx.unit_name, verifiable(ctx, text), ctx.spec.profile)
        note = f"exposure {score}"
        changes[0].then(Record.of(exposure=score))
    elif ctx.state.exposure is not None:
        note = f"exposure {ctx.state.exposure}"
    return Step(f"unit:{ctx.unit_name}", changes, note)
