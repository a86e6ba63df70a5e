"""What a run knows: the manifest, host settings, ripdep's record, and the host it acts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ripdep.host import Host
from ripdep.hostconfig import HostConfig
from ripdep.paths import PATHS, Paths
from ripdep.spec import AppSpec
from ripdep.state import AppState

if TYPE_CHECKING:
    from ripdep.releases import Release, Scan


@dataclass
class Context:
    spec: AppSpec
    settings: HostConfig  # /etc/ripdep/ripdep.toml
    state: AppState
    host: Host = field(default_factory=Host)  # the seam: tests pass a fake
    check: bool = False  # --check: plan only
    paths: Paths = PATHS
    port: int | None = None
    # what follows may hold secret values: never in a repr (tracebacks, test failures)
    secrets: dict = field(default_factory=dict, repr=False)  # name -> Secret, resolved during planning
    ssm_values: dict | None = field(default=None, repr=False)  # fetched once per run (reused by the re-check)
    code_hash: str = ""  # content hash of the source folder, computed during planning
    unit_text: str = field(default="", repr=False)
    env_text: str = field(default="", repr=False)
    files_digest: str = ""  # of the rendered [files] (they may hold secrets: a digest only)
    listening: str | None = None
    manifest_text: str = field(default="", repr=False)  # the manifest this run installs (for its release record)
    scan: Scan | None = field(default=None, repr=False)  # of the source
    releases: list[Release] = field(default_factory=list, repr=False)  # the app's release records, oldest first
    pending: Release | None = None  # the release this run switches to; None = the live one stays
    release_output: list = field(default_factory=list, repr=False)  # the release phase's last lines
    pin: Release | None = None
    manifest_given: bool = False  # this run installs a manifest (deploy --manifest)  # a rollback: the release to go back to, instead of the source
    extra_units: dict = field(default_factory=dict, repr=False)  # [processes]/[cron] unit name -> text
    process_hashes: dict = field(default_factory=dict)  # what plan_files leaves of the recorded ones  # the health wait's finding: the app listens, but not on its PORT

    @property
    def app(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def allocated_port(self) -> int:
        """The app's port, for what is planned after port.plan chose it."""
        if self.port is None:
            raise RuntimeError(f"{self.app}: the port is used before it was planned")
        return self.port

    @property
    def unit_name(self) -> str:
        return self.paths.unit_name(self.app)

    def record(self, **changes) -> None:
        """Update ripdep's state for this app and persist it at once (a crash keeps what happened)."""
        self.state = self.state.with_(**changes)
        if not self.check:
            self.host.write_state(self.state, self.paths)

    def close(self) -> None:
        self.host.close()
