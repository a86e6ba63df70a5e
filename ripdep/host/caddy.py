"""Caddy: validate a candidate configuration as a whole, then reload the live one.

Validation builds a private copy of the configuration (the main Caddyfile with its ripdep import
globs pointed at copies of the snippet folders, the candidate snippets swapped in) and runs
`caddy adapt --validate` on it. A sentinel site appended at the end must survive adaptation:
`caddy validate` alone accepts an unclosed `{` that silently swallows the following blocks.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ripdep.errors import ValidationFailed
from ripdep.host.proc import run
from ripdep.paths import PATHS, Paths

SENTINEL_HOST = "ripdep-sentinel.invalid"


def _copy_snippets(src: Path, dst: Path, overrides: dict[Path, bytes | None]) -> None:
    dst.mkdir(parents=True)
    for f in sorted(src.glob("*.caddy")) if src.is_dir() else []:
        if f not in overrides:
            shutil.copyfile(f, dst / f.name)
    for path, content in overrides.items():
        if path.parent == src and content is not None:
            (dst / path.name).write_bytes(content)


def validate(overrides: dict[Path, bytes | None], paths: Paths = PATHS) -> None:
    """Raise ValidationFailed unless the live configuration with `overrides` applied is valid."""
    with tempfile.TemporaryDirectory(prefix="ripdep-caddy.") as tmp_name:
        tmp = Path(tmp_name)
        _copy_snippets(paths.caddy_paths, tmp / "paths", overrides)
        _copy_snippets(paths.caddy_hosts, tmp / "hosts", overrides)
        main = paths.caddyfile.read_text()
        main = main.replace(f"import {paths.caddy_paths}/*.caddy", f"import {tmp}/paths/*.caddy")
        main = main.replace(f"import {paths.caddy_hosts}/*.caddy", f"import {tmp}/hosts/*.caddy")
        main += f"\nhttp://{SENTINEL_HOST} {{\n\trespond \"ok\"\n}}\n"
        (tmp / "Caddyfile").write_text(main)
        result = run(["caddy", "adapt", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile", "--validate"],
                     check=False, env={"HOME": str(tmp), "XDG_DATA_HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)})
        problems = [line for line in result.stderr.splitlines() if '"level":"error"' in line or "Error" in line]
        if result.returncode != 0:
            raise ValidationFailed("the new Caddy configuration is invalid; the live one was kept and still serves",
                                   details=(problems or result.stderr.strip().splitlines())[-10:])
        try:
            adapted = json.dumps(json.loads(result.stdout))
        except ValueError:
            adapted = ""
        if SENTINEL_HOST not in adapted:
            raise ValidationFailed("the new Caddy configuration swallows the blocks after it (an unclosed '{'?); "
                                   "the live one was kept and still serves")


def reload(paths: Paths = PATHS) -> None:
    # the admin address comes from the Caddyfile itself (a unix socket, set by ripdep init)
    run(["caddy", "reload", "--config", str(paths.caddyfile), "--adapter", "caddyfile"], error=ValidationFailed)
