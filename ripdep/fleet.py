"""Watching the fleet (docs/fleet.md): what `ripdep init` installs for it, the periodic check
(ripdep-fleet.timer -> `ripdep fleet-check`), and the one hook the CLI calls once a command's
outcome is known (audit line, metrics refresh, failure event)."""

from __future__ import annotations

import sys
import time

from ripdep.paths import PATHS, Paths

RIPDEP = "/usr/local/bin/ripdep"
FLEET_UNIT = "ripdep-fleet.service"
FLEET_TIMER = "ripdep-fleet.timer"
NOTIFY_UNIT = "ripdep-notify.service"
NOTIFY_TEMPLATE = "ripdep-notify@.service"
MARKER = "# managed by ripdep: fleet metrics and notifications (docs/fleet.md)"

# root (they read manifests, state, the secrets store to scrub events, query PostgreSQL as postgres
# and reload Caddy), with the rest closed; only ripdep's own folders are writable
HARDENING = """NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={writable}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
CapabilityBoundingSet=CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_CHOWN CAP_SETUID CAP_SETGID CAP_KILL
UMask=0077
"""


def units(settings, paths: Paths = PATHS) -> dict[str, str]:
    spool = paths.notify_spool.parent
    # "-": a folder that is not there yet (no app deployed since boot: no /run/ripdep) is skipped
    writable = " ".join(f"-{p}" for p in (paths.metrics_root.parent, spool, paths.caddy_metrics.parent,
                                          paths.locks.parent, settings.metrics_textfile_dir) if p)
    fleet = f"""{MARKER}
[Unit]
Description=ripdep fleet check: metrics for Prometheus, scrape targets, notifications
After=postgresql.service caddy.service

[Service]
Type=oneshot
ExecStart={RIPDEP} fleet-check
Nice=10
TimeoutStartSec=300
{HARDENING.format(writable=writable)}"""
    timer = f"""{MARKER}
[Unit]
Description=ripdep fleet check every minute

[Timer]
OnBootSec=30s
OnUnitInactiveSec=60s
AccuracySec=5s

[Install]
WantedBy=timers.target
"""
    notify = f"""{MARKER}
[Unit]
Description=ripdep: deliver spooled notifications

[Service]
Type=oneshot
ExecStart={RIPDEP} notify-deliver
TimeoutStartSec=600
{HARDENING.format(writable=f'-{spool}')}"""
    template = f"""{MARKER}
[Unit]
Description=ripdep: notify that %i failed

[Service]
Type=oneshot
ExecStart={RIPDEP} notify-event unit_failed %i
TimeoutStartSec=600
{HARDENING.format(writable=f'-{spool}')}"""
    return {FLEET_UNIT: fleet, FLEET_TIMER: timer, NOTIFY_UNIT: notify, NOTIFY_TEMPLATE: template}


LOGROTATE = """# managed by ripdep: the audit log (docs/fleet.md)
/var/log/ripdep/audit.jsonl {
	monthly
	rotate 24
	compress
	delaycompress
	missingok
	notifempty
	create 0600 root root
}
"""


def init_step(host, paths: Paths, settings):
    """ripdep init: folders, the units (timer enabled and started), the logrotate snippet."""
    from ripdep.resources import Action, Change, EnsureDir, Step, Symlink, Systemctl, WriteFile
    from ripdep.errors import Conflict
    from ripdep.resources.file import has_marker

    changes = []
    for folder, mode in ((paths.audit_log.parent, 0o700), (paths.notify_spool.parent, 0o700),
                         (paths.notify_spool, 0o700), (paths.metrics_root, 0o755), (paths.caddy_metrics, 0o755)):
        if host.dir_mode(folder) != (mode, 0, 0):
            changes.append(Change(f"folder:{folder}", Action.CREATE, f"ensure {folder} mode {mode:04o}",
                                  ops=(EnsureDir(folder, mode),)))
    files = {paths.units / name: text for name, text in units(settings, paths).items()}
    files[paths.root / "etc/logrotate.d/ripdep"] = LOGROTATE
    unit_changed = False
    for path, text in files.items():
        current = host.read_file(path).content
        # ripdep's own host file (any version's first line): never an app's unit of the same name
        # (an app named fleet or notify before those names were reserved) or someone else's file
        if current is not None and (not has_marker(current, "# managed by ripdep: ")
                                    or has_marker(current, "# managed by ripdep: app ")):
            raise Conflict(f"{path} exists and was not written by ripdep init",
                           hint="an app of that name (or someone else) owns it: ripdep init installs its root units "
                                "only once the file is gone; nothing of it was changed")
        if current != text.encode():
            unit_changed = unit_changed or path.parent == paths.units
            changes.append(Change(f"file:{path}", Action.UPDATE, f"write {path}",
                                  ops=(WriteFile(path, text.encode(), 0o644, dirs=((path.parent, 0o755),)),)))
    link = paths.units / "timers.target.wants" / FLEET_TIMER
    if not host.is_link(link):
        changes.append(Change(f"timer:{FLEET_TIMER}", Action.ENABLE, f"enable {FLEET_TIMER}",
                              ops=(Symlink(link, paths.units / FLEET_TIMER),)))
    if unit_changed or changes or host.active_state(FLEET_TIMER) != "active":
        changes.append(Change(f"timer:{FLEET_TIMER}", Action.START, f"start {FLEET_TIMER}",
                              ops=(Systemctl(("daemon-reload",)), Systemctl(("restart", FLEET_TIMER)))))
    return Step("fleet:host", changes, f"audit log {paths.audit_log}, {FLEET_TIMER}")


def after_command(command: str, app: str | None, steps=(), error=None, check: bool = False,
                  exit_code: int | None = None, paths: Paths = PATHS) -> None:
    """The CLI's one hook after a command's outcome is known. Never raises, never waits: the
    audit line is one append; the metrics refresh and a failure's delivery run in their own units."""
    from ripdep import audit

    if command not in audit.MUTATING or check:
        return
    audit.record(command, app, steps, error, check, exit_code, paths=paths)
    try:
        from ripdep import notify

        if error is not None:
            notify.after_failure(command, app, error, paths)
        changed = any(s.changes for s in steps)
        if (changed or error is not None) and command != "run":
            notify.start_unit(FLEET_UNIT, paths)  # metrics follow the change within a second or two
    except Exception as e:  # noqa: BLE001 - the command is done; its report must not turn into a failure
        print(f"ripdep: warning: fleet hook: {e}", file=sys.stderr)


def fleet_check(paths: Paths = PATHS) -> dict:
    """Every minute: read the fleet once (as `ripdep status` does), write the metrics, raise events
    for what is new (a stale backup, drift), deliver the spool."""
    from ripdep import metrics, notify, ops
    from ripdep import status as status_mod
    from ripdep.errors import RipdepError
    from ripdep.hostconfig import load_host_config
    from ripdep.spec import load_manifest

    settings = load_host_config(paths)
    t0 = time.monotonic()
    apps = ops.installed_apps(paths)
    rows = status_mod.collect(apps, paths)
    specs = {}
    for app in apps:
        try:
            specs[app] = load_manifest(app, paths.manifest(app))
        except RipdepError:
            continue
    summary: dict = {"apps": len(apps)}
    summary.update(metrics.write_all(rows, specs, settings, paths, collect_seconds=time.monotonic() - t0))
    summary["events"] = notify.check_rows(rows, paths, settings)
    summary["delivery"] = notify.deliver(paths, settings)
    return summary
