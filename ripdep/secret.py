"""Secret values: a type that never shows itself, and the root-only store they live in.

/etc/ripdep/secrets/NAME/ (root 0700) holds one 0600 file per secret: the only store; the env file
is rendered from it.
"""

from __future__ import annotations

import os
import secrets as csprng
from pathlib import Path

from ripdep.host import fs

MASK = "********"


class Secret:
    """A secret value; str(), repr() and format() all give the mask, .reveal() the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __format__ = lambda self, *a: MASK  # noqa: E731

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and csprng.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def generate() -> Secret:
    return Secret(csprng.token_urlsafe(32))


def read_store(folder: Path) -> dict[str, Secret]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    out = {}
    for name in names:
        if name.startswith("."):
            continue  # temp files of an interrupted write
        data = fs.read_file(folder / name).content
        if data is not None:
            out[name] = Secret(data.decode())
    return out


def write_secret(folder: Path, name: str, value: Secret) -> None:
    fs.ensure_dir(folder.parent, mode=0o700)
    fs.ensure_dir(folder, mode=0o700)
    fs.write_file(folder / name, value.reveal().encode(), mode=0o600)
