"""Fleet metrics, notifications and the audit log (docs/fleet.md), without a host: every path is
under tmp_path. The end-to-end proof with Debian's Prometheus and node_exporter is
tests/integration/test_fleet_metrics.py."""

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from fakehost import rooted
from ripdep import audit, fleet, metrics, notify
from ripdep.cli import main
from ripdep.errors import HealthCheckFailed
from ripdep.hostconfig import HostConfig, parse_host_config
from ripdep.paths import PATHS, Paths
from ripdep.resources import Change, Step
from ripdep.spec import parse_manifest
from ripdep.status import AppStatus

ROOT = Path(__file__).resolve().parents[2]
SECRET = "fleet-secret-9b2e7d"


def spec(app: str, **extra):
    return parse_manifest(app, {"source": "/opt/x", "start": ["/bin/true"], **extra}, Path(f"/etc/ripdep/apps/{app}.toml"))


def row(app: str = "shop-a", **kw) -> AppStatus:
    base = dict(desired="running", active_state="active", sub_state="running", restarts=2, memory_bytes=1000,
                port=20000, health="ok", health_latency_ms=4.0, database_bytes=7000, exposure=0.9,
                last_change="2026-11-26T21:38:27Z", backup_state="ok", backup_last="20261126T213827Z",
                backup_age_seconds=600, backup_size_bytes=42)
    base.update(kw)
    return AppStatus(app, **base)


# --- metrics ------------------------------------------------------------------------------------

def test_label_values_are_escaped():
    assert metrics.label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    e = metrics.Exposition()
    e.add("x", "gauge", "help", {"app": 'evil"} 1\nripdep_app_up{app="other'}, 1)
    lines = e.text().splitlines()
    assert len([line for line in lines if not line.startswith("#")]) == 1  # no injected series


def test_exposition_has_one_series_per_app_and_no_free_text():
    rows = [row("shop-a", health="failing", health_error='\x1b]52;c;evil\x07 "} 1', health_latency_ms=None),
            row("shop-b", desired="stopped", active_state="inactive", health="unchecked", role_drift="SUPERUSER")]
    text = metrics.exposition(rows, {"shop-a": spec("shop-a", metrics="/metrics"), "shop-b": spec("shop-b")},
                              {"shop-a": 3}, now=1_000_000)
    assert "evil" not in text and "\x1b" not in text  # a health error is never a label
    assert 'ripdep_app_up{app="shop-a"} 1' in text and 'ripdep_app_up{app="shop-b"} 0' in text
    assert 'ripdep_app_healthy{app="shop-a"} 0' in text and 'ripdep_app_healthy{app="shop-b"}' not in text
    assert 'ripdep_app_drift{app="shop-b",kind="role"} 1' in text
    assert 'ripdep_app_database_connections{app="shop-a"} 3' in text
    assert 'ripdep_app_database_connections{app="shop-b"} 0' in text
    assert 'ripdep_app_backup_last_verified_timestamp_seconds{app="shop-a"} 999400' in text
    assert 'ripdep_app_last_deploy_timestamp_seconds{app="shop-a"} 1795' in text
    assert 'ripdep_app_scrape_target{app="shop-a"} 1' in text
    assert text.count("# TYPE ripdep_app_up gauge") == 1
    promtool = shutil.which("promtool")
    if promtool:  # Debian's prometheus package: the format itself, as Prometheus reads it
        proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_release_hook_adds_the_info_series(monkeypatch):
    monkeypatch.setattr(metrics, "RELEASE_HOOK", lambda app: "r42")
    assert 'ripdep_app_release_info{app="shop-a",release="r42"} 1' in metrics.exposition([row()], {}, {})


def test_write_atomic_never_leaves_a_prom_file_half_written(tmp_path):
    target = tmp_path / "ripdep.prom"
    assert metrics.write_atomic(target, b"a 1\n")
    assert not metrics.write_atomic(target, b"a 1\n")  # unchanged: not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ripdep.prom"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"  # node_exporter runs as prometheus


def test_scrape_targets_and_site_only_for_apps_with_metrics():
    specs = {"a": spec("a", metrics="/metrics"), "b": spec("b"),
             "c": spec("c", metrics="/internal/prom", route={"host": "c.example.com"})}
    assert metrics.scrape_targets(specs, "127.0.0.1:9180") == [
        {"targets": ["127.0.0.1:9180"], "labels": {"app": "a", "__metrics_path__": "/a/metrics"}},
        {"targets": ["127.0.0.1:9180"], "labels": {"app": "c", "__metrics_path__": "/c/internal/prom"}}]
    site = metrics.scrape_site(specs, "127.0.0.1:9180")
    assert site.splitlines()[1:3] == ["http://127.0.0.1:9180 {", "\tbind 127.0.0.1"]
    assert "path /a/metrics" in site and "/b" not in site and "header_up Host c.example.com" in site
    assert "respond \"not a ripdep metrics path\" 404" in site
    assert metrics.scrape_site({"b": spec("b")}, "127.0.0.1:9180") is None
    assert metrics.scrape_targets(specs, "") == [] and metrics.scrape_site(specs, "") is None


@pytest.mark.skipif(not shutil.which("caddy"), reason="caddy not installed")
def test_scrape_site_is_valid_caddy(tmp_path):
    paths = Paths(tmp_path)
    paths.caddyfile.parent.mkdir(parents=True)
    paths.caddyfile.write_text(f":80 {{\n}}\nimport {paths.caddy_metrics}/*.caddy\n")
    site = metrics.scrape_site({"a": spec("a", metrics="/metrics"), "c": spec("c", metrics="/m", route={
        "host": "c.example.com"})}, "[::1]:9180", paths)
    metrics.validate_site(site, paths)


@pytest.mark.parametrize("value", ["metrics", "/a/../b", "/a b", "/a?x=1", "/{x}", "/a\n"])
def test_hostile_metrics_paths_are_refused(value):
    from ripdep.errors import BadInput

    with pytest.raises(BadInput, match="metrics"):
        spec("a", metrics=value)


@pytest.mark.parametrize("key, value", [("metrics_listen", "0.0.0.0:9180"), ("metrics_listen", "10.0.0.1:80"),
                                        ("metrics_listen", "127.0.0.1:99999"), ("notify_webhook", "file:///etc/shadow"),
                                        ("notify_webhook", "http://a b"), ("notify_command", "curl -d @- x"),
                                        ("metrics_textfile_dir", "relative/dir")])
def test_hostile_host_settings_are_refused(key, value):
    from ripdep.errors import BadInput

    with pytest.raises(BadInput, match=key):
        parse_host_config({key: value}, "ripdep.toml")


def test_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool missing (Debian's prometheus package; tests/setup.sh installs it)")
    proc = subprocess.run([promtool, "check", "rules", str(ROOT / "docs/prometheus/ripdep-alerts.yml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "SUCCESS: 7 rules found" in proc.stdout, proc.stdout + proc.stderr
    rules = (ROOT / "docs/prometheus/ripdep-alerts.yml").read_text()
    for alert in ("RipdepAppDown", "RipdepAppCrashLooping", "RipdepBackupStale", "RipdepDrift"):
        assert f"alert: {alert}" in rules


# --- the audit log ------------------------------------------------------------------------------

@pytest.fixture
def root(tmp_path, monkeypatch):
    """PATHS pointed at tmp_path (as tests/unit/test_contract.py does), as root."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    with rooted(tmp_path):
        PATHS.host_config.parent.mkdir(parents=True)
        PATHS.host_config.write_text("")
        PATHS.secrets("hello").mkdir(parents=True)
        (PATHS.secrets("hello") / "SECRET_KEY").write_text(SECRET)
        yield tmp_path


def test_redaction_of_the_command_line():
    assert audit.redact_argv("config set", ["config", "set", "a", "K=v=w", "--no-restart"]) == \
        ["config", "set", "a", "K=***", "--no-restart"]
    assert audit.redact_argv("run", ["run", "--pipe", "a", "--", "psql", "-c", "ALTER ROLE x PASSWORD 'p'"]) == \
        ["run", "--pipe", "a", "--", "psql", "[2 argument(s) not recorded]"]
    assert audit.redact_argv("deploy", ["deploy", "a", "--manifest", "/m.toml"]) == ["deploy", "a", "--manifest", "/m.toml"]


def test_a_line_per_changing_command_without_secrets(root, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "alice")
    steps = [Step("env:hello", [Change("env:hello", "update", f"write env (leaked {SECRET}?)")])]
    doc = audit.record("deploy", "hello", steps, argv=["deploy", "hello", f"--x={SECRET}"])
    assert doc is not None and doc["user"] == "alice" and doc["via"] == "sudo" and doc["outcome"] == "changed"
    error = HealthCheckFailed(f"failed: {SECRET}", details=[f"journal: {SECRET}"])
    audit.record("restart", "hello", (), error, argv=["restart", "hello"])
    assert audit.record("status", None, argv=["status"]) is None  # reads only
    assert audit.record("deploy", "hello", steps, check=True, argv=["deploy", "hello", "--check"]) is None
    text = PATHS.audit_log.read_text()
    assert SECRET not in text and "********" in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(d["command"], d["outcome"]) for d in lines] == [("deploy", "changed"), ("restart", "failed")]
    assert lines[1]["error"] == {"code": "health_check_failed", "message": "failed: ********"}
    assert oct(PATHS.audit_log.stat().st_mode & 0o777) == "0o600"
    assert oct(PATHS.audit_log.parent.stat().st_mode & 0o777) == "0o700"


def test_history_command_reads_it_back(root, monkeypatch):
    monkeypatch.setattr("sys.argv", ["ripdep", "secret", "set", "hello", "OTHER"])
    result = CliRunner().invoke(main, ["secret", "set", "hello", "OTHER", "--no-restart", "--json"],
                                input=SECRET + "-new\n")
    assert result.exit_code != 0  # no manifest: refused, and still recorded
    audit.record("deploy", "other", argv=["deploy", "other"])
    out = CliRunner().invoke(main, ["history", "hello", "--json"])
    entries = json.loads(out.stdout)["data"]["entries"]
    assert [(e["command"], e["outcome"], e["app"]) for e in entries] == [("secret set", "failed", "hello")]
    assert SECRET not in PATHS.audit_log.read_text()
    human = CliRunner().invoke(main, ["history"])
    assert human.exit_code == 0 and len(human.stdout.splitlines()) == 2 and "ripdep deploy other" in human.stdout


def test_history_needs_root(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["history", "--json"])
    assert result.exit_code == 3 and "root" in json.loads(result.stdout)["msg"]


def test_logrotate_snippet_is_valid(tmp_path):
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not Path(logrotate).exists():
        pytest.skip("logrotate missing")
    conf = tmp_path / "ripdep"
    conf.write_text(fleet.LOGROTATE.replace("/var/log/ripdep", str(tmp_path)))
    proc = subprocess.run([logrotate, "-d", "-s", str(tmp_path / "state"), str(conf)], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr


# --- notifications ------------------------------------------------------------------------------

class Receiver:
    """A local webhook: records bodies; answers 503 to the first `fail` requests."""

    def __init__(self, fail: int = 0):
        received, state = [], {"fail": fail}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if state["fail"] > 0:
                    state["fail"] -= 1
                    self.send_response(503)
                else:
                    received.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_event_is_spooled_delivered_and_retried(root):
    receiver = Receiver(fail=1)
    settings = HostConfig(notify_webhook=receiver.url)
    assert notify.emit("hello", "deploy_failed", f"boom {SECRET}\nsecond line", settings=settings)
    spooled = list(PATHS.notify_spool.glob("*.json"))
    assert len(spooled) == 1 and oct(spooled[0].stat().st_mode & 0o777) == "0o600"
    assert notify.deliver(settings=settings) == {"sent": 0, "waiting": 1, "given_up": 0}  # 503: kept
    assert notify.deliver(settings=settings)["waiting"] == 1 and receiver.received == []  # not due yet
    assert notify.deliver(settings=settings, ignore_backoff=True)["sent"] == 1
    [event] = receiver.received
    assert set(event) == {"app", "event", "detail", "time", "host"}
    assert event["app"] == "hello" and event["event"] == "deploy_failed"
    assert event["detail"] == "boom ******** second line"
    assert list(PATHS.notify_spool.glob("*.json")) == []


def test_undeliverable_event_is_given_up_after_a_day(root):
    settings = HostConfig(notify_webhook="http://127.0.0.1:9/nothing-listens")
    notify.emit("hello", "backup_failed", "x", settings=settings)
    assert notify.deliver(settings=settings)["waiting"] == 1
    later = notify.deliver(settings=settings, now=10 ** 12)
    assert later["given_up"] == 1 and len(list((PATHS.notify_spool / "failed").glob("*.json"))) == 1


def test_command_target_gets_the_event_on_stdin(root, tmp_path):
    out = tmp_path / "got.json"
    script = tmp_path / "hook.sh"
    script.write_text(f"#!/bin/sh\ncat > {out}\n")
    script.chmod(0o755)
    settings = HostConfig(notify_command=str(script))
    notify.emit("hello", "drift", "role", settings=settings)
    assert notify.deliver(settings=settings)["sent"] == 1
    assert json.loads(out.read_text())["event"] == "drift"


def test_nothing_is_spooled_without_a_target(root):
    assert not notify.emit("hello", "deploy_failed", "x", settings=HostConfig())
    assert not PATHS.notify_spool.exists()


def test_periodic_check_raises_each_condition_once(root):
    settings = HostConfig(notify_command="/bin/true")
    rows = [row("hello", backup_state="stale", role_drift="SUPERUSER")]
    assert sorted(e["event"] for e in notify.check_rows(rows, settings=settings)) == ["backup_stale", "drift"]
    assert notify.check_rows(rows, settings=settings) == []  # announced already
    assert notify.check_rows([row("hello")], settings=settings) == []  # cleared
    assert [e["event"] for e in notify.check_rows([row("hello", role_drift="x")], settings=settings)] == ["drift"]


def test_a_rolled_back_deploy_raises_rollback(root):
    from ripdep.errors import RolledBack

    PATHS.host_config.write_text('notify_command = "/bin/true"\n')
    fleet.after_command("deploy", "hello", (), RolledBack("release r2 failed; now serving r1"))
    [spooled] = PATHS.notify_spool.glob("*.json")
    assert json.loads(spooled.read_text())["event"]["event"] == "rollback"


def test_failed_deploy_raises_an_event_from_the_cli_hook(root):
    PATHS.host_config.write_text('notify_command = "/bin/true"\n')
    fleet.after_command("deploy", "hello", (), HealthCheckFailed("app hello failed its health check"))
    fleet.after_command("deploy", "hello", (), HealthCheckFailed("x"), check=True)  # --check: nothing
    fleet.after_command("run", "hello", exit_code=3)  # a command's own failure is not ripdep's
    [spooled] = PATHS.notify_spool.glob("*.json")
    event = json.loads(spooled.read_text())["event"]
    assert event["event"] == "deploy_failed" and "health_check_failed" in event["detail"]


@pytest.mark.parametrize("unit, app", [("ripdep-shop-a.service", "shop-a"), ("ripdep-shop-a.worker.2.service", "shop-a"),
                                       ("ripdep-x.job.nightly.service", "x"), ("sshd.service", None),
                                       ("ripdep-Bad.service", None), ("ripdep-a.timer", None)])
def test_app_of_unit(unit, app):
    assert notify.app_of_unit(unit) == app


def test_units_are_rendered_with_the_settings():
    units = fleet.units(HostConfig(metrics_textfile_dir="/srv/textfiles"))
    assert "ReadWritePaths=-/var/lib/ripdep -/var/spool/ripdep -/etc/caddy/ripdep -/run/ripdep -/srv/textfiles" \
        in units["ripdep-fleet.service"]
    assert "ExecStart=/usr/local/bin/ripdep notify-event unit_failed %i" in units["ripdep-notify@.service"]
    assert "OnUnitInactiveSec=60s" in units["ripdep-fleet.timer"]
