"""The fleet watched (docs/fleet.md), end to end in the container: Debian's own prometheus and
prometheus-node-exporter read what ripdep writes (PromQL over the HTTP API returns a series per
app), apps with `metrics` are scraped through the loopback-only listener, a failed unit and a
failed deploy reach a local webhook (retried), and every change is in the audit log — with no
secret value anywhere in it, in an event, or in the metrics."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from conftest import AWS, ROOT, manifest, ssm

RECEIVER_PORT = 8099
EVENTS = "/root/fleet-events.jsonl"
TEXTFILE = "/var/lib/prometheus/node-exporter/ripdep.prom"
SSM_VALUE = "fleet-ssm-value-5d1c0e"
STORED_VALUE = "fleet-stored-value-a7f3b2"
CONFIG_VALUE = "fleet-config-value-e4c9"
PROMETHEUS_YML = """global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files: [/etc/prometheus/ripdep-alerts.yml]
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["127.0.0.1:9100"]}]
  - job_name: ripdep-apps
    file_sd_configs:
      - files: [/var/lib/ripdep/metrics/targets.json]
        refresh_interval: 2s
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "ripdep_.*"
        action: drop
"""


def wait(what: str, check, timeout: float = 60.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def set_setting(ct, key: str, value: str) -> None:
    ct.sh(f"sed -i 's|^{key} = .*|{key} = {json.dumps(value)}|' /etc/ripdep/ripdep.toml", check=True)


def query(ct, promql: str) -> list[dict]:
    doc = ct.get_json("http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def events(ct) -> list[dict]:
    proc = ct.run("cat", EVENTS)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def fleet(ct, probe_factory):
    """Three apps (path route with metrics, host route with metrics, none), Debian's node_exporter
    and Prometheus running with a file_sd job for ripdep's targets, a webhook receiver that fails
    its first request."""
    ct.run("systemctl", "reset-failed", "fleet-hook.service")
    ct.run("systemd-run", "--unit=fleet-hook", "-E", "FAIL_FIRST=1", "/usr/bin/python3",
           str(ROOT / "tests/fixtures/receiver.py"), str(RECEIVER_PORT), EVENTS, check=True)
    set_setting(ct, "notify_webhook", f"http://127.0.0.1:{RECEIVER_PORT}/hook")
    apps = {
        "fm-a": probe_factory("fm-a", manifest(metrics='"/metrics"')),
        "fm-b": probe_factory("fm-b", manifest(metrics='"/metrics"', raw='[route]\nhost = "fm-b.example.test"')),
        "fm-c": probe_factory("fm-c"),
    }
    ct.write("/etc/prometheus/prometheus.yml", PROMETHEUS_YML)
    ct.run("cp", str(ROOT / "docs/prometheus/ripdep-alerts.yml"), "/etc/prometheus/ripdep-alerts.yml", check=True)
    ct.run("systemctl", "start", "prometheus-node-exporter.service", "prometheus.service", check=True)
    try:
        yield apps
    finally:
        set_setting(ct, "notify_webhook", "")
        ct.run("systemctl", "stop", "prometheus.service", "prometheus-node-exporter.service", "fleet-hook.service")
        for app in apps:
            ct.ripdep("destroy", app, "--yes", "--backup")


def test_init_installed_hardened_units_a_timer_and_log_rotation(ct):
    assert ct.show("ripdep-fleet.timer", "ActiveState") == "active"
    assert ct.run("systemctl", "is-enabled", "ripdep-fleet.timer").stdout.strip() == "enabled"
    for unit in ("ripdep-fleet.service", "ripdep-notify.service", "ripdep-notify@ripdep-x.service.service"):
        out = ct.run("systemd-analyze", "security", "--no-pager", unit).stdout
        score = float(out.strip().splitlines()[-1].split("level for")[1].split(":")[1].split()[0])
        assert score <= 3.0, out[-400:]
    proc = ct.run("logrotate", "-d", "/etc/logrotate.d/ripdep")
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr
    assert ct.run("stat", "-c", "%a %U", "/var/log/ripdep").stdout.split() == ["700", "root"]


def test_prometheus_has_each_apps_series(ct, fleet):
    # the app units report failures (deployed, so systemd-analyze verify accepted it)
    assert ct.show("ripdep-fm-a.service", "OnFailure") == "ripdep-notify@ripdep-fm-a.service.service"
    ct.run("systemctl", "start", "ripdep-fleet.service", check=True)
    want = {"fm-a", "fm-b", "fm-c"}

    def apps_of(promql: str) -> set[str]:
        return {r["metric"].get("app") for r in query(ct, promql)}

    wait("ripdep_app_up for every app in Prometheus", lambda: want <= apps_of("ripdep_app_up == 1"))
    for series in ("ripdep_app_healthy == 1", "ripdep_app_restarts", "ripdep_app_memory_bytes",
                   "ripdep_app_cpu_seconds_total", "ripdep_app_database_bytes > 0", "ripdep_app_database_connections",
                   "ripdep_app_last_deploy_timestamp_seconds > 0", "ripdep_app_drift == 0", "ripdep_app_backup_stale",
                   "ripdep_app_release_info"):
        assert want <= apps_of(series), series
    # the apps' own metrics, scraped through the loopback listener, labelled with the app; an app
    # cannot pass as another: its own `app` label becomes exported_app
    wait("the apps' own metrics", lambda: apps_of('probe_metric_up{job="ripdep-apps"}') == {"fm-a", "fm-b"})
    claims = query(ct, "probe_claim")
    assert {(r["metric"]["app"], r["metric"]["exported_app"]) for r in claims} == {("fm-a", "victim"),
                                                                                ("fm-b", "victim")}
    assert {r["metric"].get("mount", "") for r in query(ct, "probe_metric_up")} == {"/fm-a", ""}  # path route, host route
    # the rules load and evaluate
    rules = ct.get_json("http://127.0.0.1:9090/api/v1/rules")["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} >= {"RipdepAppDown", "RipdepAppCrashLooping",
                                                             "RipdepBackupStale", "RipdepDrift"}
    proc = ct.sh(f"promtool check metrics < {TEXTFILE}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_scrape_listener_is_loopback_only_and_serves_only_metrics(ct, fleet):
    listening = ct.run("ss", "-Hltn", "sport = :9180").stdout.split()
    assert "127.0.0.1:9180" in listening and "*:9180" not in listening and "0.0.0.0:9180" not in listening
    assert ct.curl("http://127.0.0.1:9180/fm-a/metrics", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    for path in ("/fm-a/healthz", "/fm-a/op/whoami", "/fm-c/metrics", "/fm-a/metrics/../op/whoami"):
        assert ct.curl(f"http://127.0.0.1:9180{path}", "-o", "/dev/null", "-w", "%{http_code}",
                       "--path-as-is").stdout == "404", path
    assert ct.curl("http://127.0.0.1:9180/fm-a/metrics", "-X", "POST", "-o", "/dev/null",
                   "-w", "%{http_code}").stdout == "404"
    targets = json.loads(ct.run("cat", "/var/lib/ripdep/metrics/targets.json").stdout)
    assert [t["labels"]["app"] for t in targets] == ["fm-a", "fm-b"]


def test_metrics_follow_a_command_without_waiting_for_the_timer(ct, fleet):
    ct.ripdep("stop", "fm-c", check=True)
    try:
        wait("fm-c recorded as stopped in the textfile",
             lambda: 'ripdep_app_desired_running{app="fm-c"} 0' in ct.run("cat", TEXTFILE).stdout, timeout=20)
    finally:
        ct.ripdep("start", "fm-c", check=True)


def test_a_failed_unit_reaches_the_webhook_after_a_retry(ct, fleet):
    unit = "ripdep-fm-c.service"
    before = len(events(ct))
    for _ in range(8):  # past StartLimitBurst: the unit fails, OnFailure= runs ripdep-notify@
        if ct.show(unit, "ActiveState") == "failed":
            break
        ct.run("systemctl", "kill", "-s", "SIGKILL", unit)
        time.sleep(1.2)
    assert ct.show(unit, "ActiveState") == "failed"
    try:
        # the receiver answered 503 the first time: the event waits in the spool; a retry delivers it
        wait("the event in the spool", lambda: ct.sh("ls /var/spool/ripdep/notify/*.json").returncode == 0
             or len(events(ct)) > before, timeout=20)
        ct.ripdep("notify-deliver", "--now")
        got = wait("the unit_failed event", lambda: [e for e in events(ct)[before:] if e["event"] == "unit_failed"])
        assert got[0]["app"] == "fm-c" and set(got[0]) == {"app", "event", "detail", "time", "host"}
        assert unit in got[0]["detail"]
    finally:
        ct.run("systemctl", "reset-failed", unit)
        ct.ripdep("start", "fm-c", check=True)


def test_a_failed_deploy_and_a_rollback_reach_the_webhook(ct, fleet):
    before = len(events(ct))
    # a new app that never comes up: deploy_failed
    ct.write("/root/manifests/fm-d.toml", manifest(start='["/bin/false"]'))
    try:
        code, _ = ct.deploy_json("fm-d", "--manifest", "/root/manifests/fm-d.toml")
        assert code != 0
        got = wait("the deploy_failed event",
                   lambda: [e for e in events(ct)[before:] if e["event"] == "deploy_failed"], timeout=30)
        assert got[0]["app"] == "fm-d" and got[0]["detail"].startswith("ripdep deploy fm-d: ")
        assert "\n" not in got[0]["detail"] and len(got[0]["detail"]) <= 1001
    finally:
        ct.ripdep("destroy", "fm-d", "--yes", "--backup")
    # a new release of a running app that fails: the release engine switches back, and says so
    app = fleet["fm-a"]
    code, doc = app.deploy(manifest(start='["/bin/false"]', metrics='"/metrics"'))
    assert code != 0 and doc["errors"][0]["code"] == "rolled_back", doc["errors"]
    got = wait("the rollback event", lambda: [e for e in events(ct)[before:] if e["event"] == "rollback"], timeout=30)
    assert got[0]["app"] == "fm-a" and "rolled_back" in got[0]["detail"]
    code, doc = app.deploy(manifest(metrics='"/metrics"'))
    assert code == 0, doc


def test_audit_log_and_history_hold_no_secret(ct, fleet, moto):
    ssm(ct, "put", {"/fleet/api": SSM_VALUE})
    text = manifest(raw='[secrets]\nAPI = "ssm:/fleet/api"\nGEN = "generate"')
    ct.write("/root/manifests/fm-s.toml", text)
    try:
        code, doc = ct.deploy_json("fm-s", "--manifest", "/root/manifests/fm-s.toml",
                                   env={**AWS, "SUDO_USER": "alice"})
        assert code == 0, doc
        ct.run("ripdep", "secret", "set", "fm-s", "STORED", input=STORED_VALUE + "\n", env=AWS, check=True)
        ct.ripdep("config", "set", "fm-s", f"PLAIN={CONFIG_VALUE}", env=AWS, check=True)
        ct.ripdep("status", "fm-s", check=True)  # reads only: no line
        generated = ct.run("cat", "/etc/ripdep/secrets/fm-s/GEN", check=True).stdout.strip()
        proc = ct.ripdep("history", "fm-s", "--json")
        doc = json.loads(proc.stdout)
        assert doc["command"] == "history" and doc["app"] == "fm-s" and doc["exit_code"] == 0
        entries = doc["data"]["entries"]
        assert [(e["command"], e["outcome"]) for e in entries] == [("deploy", "changed"), ("secret set", "changed"),
                                                                  ("config set", "changed")]
        assert entries[0]["user"] == "alice" and entries[0]["via"] == "sudo"
        assert entries[0]["argv"] == ["ripdep", "deploy", "fm-s", "--json", "--manifest", "/root/manifests/fm-s.toml"]
        assert entries[2]["argv"] == ["ripdep", "config", "set", "fm-s", "PLAIN=***"]
        assert any(c["id"].startswith("unit:") for c in entries[0]["changes"])
        assert ct.run("stat", "-c", "%a %U", "/var/log/ripdep/audit.jsonl").stdout.split() == ["600", "root"]
        human = ct.ripdep("history", "fm-s").stdout
        assert "ripdep secret set fm-s STORED" in human and "alice" in human
        ct.run("systemctl", "start", "ripdep-fleet.service", check=True)
        everything = ct.sh(f"cat /var/log/ripdep/audit.jsonl {TEXTFILE} /var/lib/ripdep/metrics/targets.json "
                           f"{EVENTS}; find /var/spool/ripdep -type f -exec cat {{}} +; "
                           "journalctl -u 'ripdep-*' --no-pager").stdout
        for value in (SSM_VALUE, STORED_VALUE, CONFIG_VALUE, generated):
            assert value not in everything
    finally:
        ct.ripdep("destroy", "fm-s", "--yes", "--backup")
