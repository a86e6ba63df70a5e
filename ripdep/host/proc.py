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


def run_together(argvs: list[list[str]], *, timeout: float = 120, error=ApplyFailed) -> list[Result]:
    """Several independent commands started at once and waited for together (what `run` does for
    one, with check=False): checks that do not depend on each other overlap instead of adding up."""
    procs = []
    try:
        for argv in argvs:
            try:
                procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True, env=dict(CLEAN_ENV)))
            except FileNotFoundError:
                raise error(f"command not found: {argv[0]}",
                            hint="run sudo ./install.sh to install what ripdep needs") from None
        results = []
        for argv, proc in zip(argvs, procs, strict=True):
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise error(f"command timed out after {timeout:.0f}s: {shlex.join(argv)}") from None
            results.append(Result(argv, proc.returncode, out, err))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
