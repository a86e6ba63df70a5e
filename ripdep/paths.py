"""Every on-host path ripdep owns, in one object (docs/architecture.md has the table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path = Path("/")

    def _p(self, rel: str) -> Path:
        return self.root / rel

    # host-wide
    @property
    def host_config(self) -> Path:
        return self._p("etc/ripdep/ripdep.toml")

    @property
    def manifests(self) -> Path:
        return self._p("etc/ripdep/apps")

    @property
    def secrets_root(self) -> Path:
        return self._p("etc/ripdep/secrets")

    @property
    def env_root(self) -> Path:
        return self._p("etc/ripdep/env")

    @property
    def state_root(self) -> Path:
        return self._p("var/lib/ripdep/state")

    @property
    def apps_state_root(self) -> Path:
        return self._p("var/lib/ripdep/apps")

    @property
    def config_root(self) -> Path:
        """[files] of every app: 0711, so an app reaches its own folder but lists no other's."""
        return self._p("etc/ripdep/files")

    def config_dir(self, app: str) -> Path:
        return self.config_root / app

    @property
    def code_root(self) -> Path:
        return self._p("srv/ripdep")

    @property
    def units(self) -> Path:
        return self._p("etc/systemd/system")

    @property
    def caddyfile(self) -> Path:
        return self._p("etc/caddy/Caddyfile")

    @property
    def caddy_paths(self) -> Path:
        return self._p("etc/caddy/ripdep/paths")

    @property
    def caddy_hosts(self) -> Path:
        return self._p("etc/caddy/ripdep/hosts")

    @property
    def caddy_staging(self) -> Path:
        # outside the imported folders: Caddy 2.6 imports dotfiles and chokes on empty files
        return self._p("etc/caddy/ripdep/staging")

    @property
    def caddy_admin_dir(self) -> Path:
        # Caddy's RuntimeDirectory (caddy:caddy 0700): apps cannot enter it
        return self._p("run/caddy")

    @property
    def caddy_admin_socket(self) -> Path:
        return self.caddy_admin_dir / "admin.sock"

    @property
    def backups_root(self) -> Path:
        return self._p("var/backups/ripdep")

    def backups(self, app: str) -> Path:
        return self.backups_root / app

    def backup_unit_name(self, app: str, kind: str = "service") -> str:
        return f"ripdep-backup-{app}.{kind}"

    # fleet: audit log, notification spool, metrics (docs/fleet.md)
    @property
    def audit_log(self) -> Path:
        return self._p("var/log/ripdep/audit.jsonl")

    @property
    def notify_spool(self) -> Path:
        return self._p("var/spool/ripdep/notify")

    @property
    def metrics_root(self) -> Path:
        """ripdep's own metrics files other programs read: Prometheus's file_sd targets."""
        return self._p("var/lib/ripdep/metrics")

    @property
    def caddy_metrics(self) -> Path:
        """The loopback-only scrape site (imported at the top level of the Caddyfile)."""
        return self._p("etc/caddy/ripdep/metrics")

    @property
    def locks(self) -> Path:
        return self._p("run/ripdep/locks")

    # per app
    def manifest(self, app: str) -> Path:
        return self.manifests / f"{app}.toml"

    def state(self, app: str) -> Path:
        return self.state_root / f"{app}.toml"

    def secrets(self, app: str) -> Path:
        return self.secrets_root / app

    def env_file(self, app: str) -> Path:
        return self.env_root / f"{app}.env"

    def app_state_dir(self, app: str) -> Path:
        return self.apps_state_root / app

    def code(self, app: str) -> Path:
        return self.code_root / app

    def unit_name(self, app: str) -> str:
        return f"ripdep-{app}.service"

    def unit(self, app: str) -> Path:
        return self.units / self.unit_name(app)

    # the app's way in (units/proxy.*.j2). A "." never occurs in an app name, so these names can
    # never be another app's unit ("ripdep-x-proxy.service" could be app x-proxy's).
    def proxy_socket_name(self, app: str) -> str:
        return f"ripdep-{app}.proxy.socket"

    def proxy_service_name(self, app: str) -> str:
        return f"ripdep-{app}.proxy.service"

    # [processes] and [cron] (units/process.service.j2, units/job.*.j2): process names have no
    # dots either, so "NAME.2" (an instance) and "job.NAME" can never be another process's name
    def process_unit_names(self, app: str, process: str, count: int) -> list[str]:
        if count == 1:
            return [f"ripdep-{app}.{process}.service"]
        return [f"ripdep-{app}.{process}.{i}.service" for i in range(1, count + 1)]

    def job_unit_name(self, app: str, job: str, kind: str = "service") -> str:
        return f"ripdep-{app}.job.{job}.{kind}"

    def app_units_prefix(self, app: str) -> str:
        """Every unit of the app besides the web one starts with this (proxy, processes, jobs)."""
        return f"ripdep-{app}."

    def app_wants(self, app: str) -> Path:
        """What starting the app pulls in ([Install] WantedBy= the app's unit): its processes and timers."""
        return self.units / f"{self.unit_name(app)}.wants"

    # releases (ripdep/releases.py): "NAME.releases" can never be an app's code folder (no dots)
    def releases_root(self, app: str) -> Path:
        return self.code_root / f"{app}.releases"

    def release_records(self, app: str) -> Path:
        return self.state_root.parent / "releases" / app

    def proxy_socket(self, app: str) -> Path:
        return self._p(f"run/ripdep/{app}.sock")

    def run_unit_name(self, app: str, unit_id: str) -> str:
        # `ripdep run`'s transient units: the "." keeps them apart from every app's own units too
        return f"ripdep-{app}.run-{unit_id}.service"

    def path_snippet(self, app: str) -> Path:
        return self.caddy_paths / f"{app}.caddy"

    def host_snippet(self, app: str) -> Path:
        return self.caddy_hosts / f"{app}.caddy"


PATHS = Paths()
