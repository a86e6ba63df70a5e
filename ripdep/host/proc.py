"""One way to run an external command: argv only, no shell, clean environment, stdin closed."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from ripdep.errors import ApplyFailed

CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(argv: list[str], *, check: bool = True, input: str | None = None, timeout: float = 120,
        env: dict | None = None, error=ApplyFailed) -> Result:
    """Run argv; with check=True a non-zero exit raises `error` carrying the copy-pasteable command.

    Secrets never go into argv: pass them through `input` (stdin) or a root-only file.
    """
    try:
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**CLEAN_ENV, **(env or {})},
        )
    except FileNotFoundError:
        raise error(f"command not found: {argv[0]}", hint="run sudo ./install.sh to install what ripdep needs") from None
    except subprocess.TimeoutExpired:
        raise error(f"command timed out after {timeout:.0f}s: {shlex.join(argv)}") from None
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise error(
            f"command failed (exit {proc.returncode}): {shlex.join(argv)}",
            details=[line for line in proc.stderr.strip().splitlines()[-20:]],
        )
    return result
