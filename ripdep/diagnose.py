"""Why a deploy's app is not healthy, read from what systemd, the journal and the health check saw.

Pure: lines and facts in, one Diagnosis out. The first rule that matches wins, in the order of the
rules (the start program before the sandbox, the sandbox before the app's own complaints), and the
journal is searched from its newest line, so the line shown is the one that names the cause, not
the last of a stack trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ripdep.host.http import Probe


@dataclass(frozen=True)
class Diagnosis:
    cause: str  # one sentence: what went wrong
    hint: str  # what to do about it
    line: str | None = None  # the journal line that names the cause

    def details(self) -> list[str]:
        return [f"cause: {self.cause}"] + ([f"seen: {self.line.strip()}"] if self.line else [])


# (pattern over one journal line, cause, hint); {app} is filled in
RULES: tuple[tuple[re.Pattern, str, str], ...] = (
    (re.compile(r"status=203/EXEC|Failed to (execute|locate executable)|Unable to locate executable", re.I),
     "systemd could not execute the start program (status 203/EXEC)",
     "check 'start': the program must exist in the code folder or on the PATH, be executable (chmod +x) and, "
     "for a script, have a #! line naming an interpreter the app's user may run (not one under /root)"),
    (re.compile(r"status=(31/SYS|5/TRAP)|SIGSYS|SIGTRAP|Bad system call|write ?\+ ?execute|W\^X|mprotect|"
                r"executable memory|MemoryDenyWriteExecute", re.I),
     "the app was stopped by the sandbox: it needs write+execute memory (a JIT: Node, Java, .NET, LuaJIT, PyPy)",
     "set profile = \"jit\" in the manifest (docs/hardening.md)"),
    (re.compile(r"collat|lc_collate|lc_ctype|\blocale\b", re.I),
     "the app complains about its database's collation or locale",
     "set database_locale in the manifest (e.g. \"C\"); an existing database keeps its locale: "
     "back it up, destroy and restore (docs/manifest.md)"),
    (re.compile(r"EADDRINUSE|address already in use|address in use", re.I),
     "the app tried to listen on an address that is taken: it does not use the PORT and HOST ripdep gives it",
     "make the app listen on $HOST:$PORT: pass them in start (\"--port\", \"${{PORT}}\") or in a config "
     "file from [files] (docs/third-party-apps.md)"),
    # none of the above: the app exits by itself; its own last lines (shown) say why
    (re.compile(r"Main process exited, code=\w+, status=(?!0/)"),
     "the app exits soon after it starts",
     "ripdep logs {app}: the app's own lines before its exit say why"),
)
NOT_LISTENING = Diagnosis(
    "the app runs but nothing listens on its PORT: it ignores the PORT and HOST ripdep gives it",
    "make the app listen on $HOST:$PORT: pass them in start (\"--port\", \"${PORT}\") or in a config file from "
    "[files] (docs/third-party-apps.md)")


def diagnose(app: str, journal: list[str], probe: Probe | None, listening: str | None = None) -> Diagnosis:
    """`journal`: the app unit's recent lines, oldest first; `listening`: what the health wait saw
    about the app's listeners (None = not known)."""
    for pattern, cause, hint in RULES:
        for line in reversed(journal):
            if pattern.search(line):
                return Diagnosis(cause, hint.format(app=app), line)
    if listening:
        return Diagnosis(f"{NOT_LISTENING.cause} ({listening})", NOT_LISTENING.hint)
    if probe is not None and probe.status is not None and 400 <= probe.status < 500:
        return Diagnosis(f"the health check's request was answered {probe.status}: the check asks the wrong thing "
                         "(path, method or body), the app itself answers",
                         "fix 'health' in the manifest: a path the app serves, or a [health] table with method, "
                         "body, headers and the expected status (docs/manifest.md)")
    return Diagnosis("the app did not answer its health check in time",
                     f"ripdep logs {app}: the journal says why; if it shows SIGSYS or a crash at start, "
                     "try profile = \"jit\" (docs/hardening.md)")
