"""What a run knows: the manifest, host settings, ripdep's record, and lazily opened host handles."""

from __future__ import annotations

from dataclasses import dataclass, field

from ripdep.hostconfig import HostConfig
from ripdep.paths import PATHS, Paths
from ripdep.spec import AppSpec
from ripdep.state import AppState


@dataclass
class Context:
    spec: AppSpec
    host: HostConfig
    state: AppState
    check: bool = False  # --check: plan only
    paths: Paths = PATHS
    port: int | None = None
    secrets: dict = field(default_factory=dict)  # name -> Secret, resolved during planning
    ssm_values: dict | None = None  # fetched from SSM once per run (the convergence check reuses them)
    code_hash: str = ""  # content hash of the source folder, computed during planning
    unit_text: str = ""
    env_text: str = ""
    _bus: object = None
    _pg: object = None

    @property
    def app(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def unit_name(self) -> str:
        return self.paths.unit_name(self.app)

    @property
    def bus(self):
        if self._bus is None:
            from ripdep.host.systemd import Bus

            self._bus = Bus()
        return self._bus

    @property
    def pg(self):
        if self._pg is None:
            from ripdep.host.postgres import Postgres

            self._pg = Postgres()
        return self._pg

    def record(self, **changes) -> None:
        """Update ripdep's state for this app and persist it at once (a crash keeps what happened)."""
        from ripdep.state import write_state

        self.state = self.state.with_(**changes)
        if not self.check:
            write_state(self.state, self.paths)

    def close(self) -> None:
        for handle in (self._bus, self._pg):
            if handle is not None:
                handle.close()
