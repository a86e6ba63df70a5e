"""Host resources. Each module plans one kind: it reads the host, compares with what the manifest
wants (a pure diff), and returns Changes whose `run` applies them. An empty list means unchanged.
Resource ids look like `kind:name` and appear unchanged in logs, JSON and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Change:
    id: str  # "unit:ripdep-hello.service"
    action: str  # create | update | fix | start | restart | reload | ...
    detail: str  # one human sentence, never a secret value
    diff: str = ""  # unified diff, secrets masked
    run: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {"id": self.id, "action": self.action, "detail": self.detail}


@dataclass
class Step:
    """The outcome of planning one resource: its id, what it found, and what must change."""

    id: str
    changes: list[Change]
    note: str = ""  # why nothing changes, or a fact worth showing (the unit's exposure score)

    @property
    def changed(self) -> bool:
        return bool(self.changes)
