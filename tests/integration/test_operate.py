"""Operating apps: status, list, logs, start/stop/restart, surviving a restart of all services,
and status over a real ssh without a TTY."""

import json
import time

import pytest

from conftest import PREFIX, manifest

STATUS_KEYS = {"app", "desired", "active_state", "sub_state", "main_pid", "uptime_seconds", "restarts",
               "memory_bytes", "memory_max_bytes", "port", "url", "health", "health_status", "health_latency_ms",
               "health_error", "database_bytes", "exposure", "last_change", "backup_state", "backup_last",
               "backup_age_seconds", "backup_size_bytes", "backup_error", "role_drift", "problem", "degraded",
               "release", "release_previous", "processes", "jobs", "ripdep_version", "outdated"}


def status_json(ct, *apps, strict=False):
    proc = ct.ripdep("status", "--json", *(["--strict"] if strict else []), *apps)
    return proc.returncode, json.loads(proc.stdout)


def crash_until_failed(ct, unit):
    """SIGKILL the main process until Restart= gives up (StartLimitBurst=5)."""
    for _ in range(12):
        if ct.show(unit, "ActiveState") == "failed":
            return
        ct.run("systemctl", "kill", "--signal=SIGKILL", unit)
        for _ in range(40):
            state = ct.show(unit, "ActiveState")
            if state in ("active", "failed"):
                break
            time.sleep(0.1)
    assert ct.show(unit, "ActiveState") == "failed"


@pytest.fixture(scope="module")
def deployed(probe_factory):
    """The module's three apps, deployed once; the fixtures below put each in its state."""
    return (probe_factory("op-run", manifest(raw='[limits]\nmemory = "96M"\n')), probe_factory("op-stop"),
            probe_factory("op-crash"))


# Each test gets the states it needs whatever ran before it: the restart test brings op-crash back,
# the services-restart test starts op-stop and (by isolating) restarts op-run and op-crash.
@pytest.fixture
def running(deployed, ct):
    assert ct.ripdep("start", "op-run").returncode == 0  # running and healthy (changes nothing if so)
    return deployed[0]


@pytest.fixture
def stopped(deployed, ct):
    assert ct.ripdep("stop", "op-stop").returncode == 0  # desired stopped, inactive
    return deployed[1]


@pytest.fixture
def crashed(deployed, ct):
    crash_until_failed(ct, "ripdep-op-crash.service")  # at once if it is still failed
    return deployed[2]


@pytest.fixture
def trio(running, stopped, crashed):
    return running, stopped, crashed


def test_status_json_tells_the_truth(trio, ct):
    code, doc = status_json(ct, "op-run", "op-stop", "op-crash")
    assert code == 0 and doc["version"] == 2 and doc["data"]["degraded"] is True
    rows = {r["app"]: r for r in doc["data"]["apps"]}
    assert all(set(r) == STATUS_KEYS for r in rows.values())
    run, stop, crash = rows["op-run"], rows["op-stop"], rows["op-crash"]
    assert run["desired"] == "running" and run["active_state"] == "active" and run["health"] == "ok"
    assert run["main_pid"] == int(ct.show("ripdep-op-run.service", "MainPID"))
    assert run["memory_max_bytes"] == 96 * 1024 * 1024 and 0 < run["memory_bytes"] < run["memory_max_bytes"]
    assert run["database_bytes"] > 1_000_000 and run["exposure"] <= 1.5 and run["last_change"]
    assert run["url"] == "http://127.0.0.1/op-run/" and run["degraded"] is False
    assert stop["desired"] == "stopped" and stop["active_state"] == "inactive" and stop["health"] == "unchecked"
    assert stop["degraded"] is False
    assert crash["desired"] == "running" and crash["active_state"] == "failed" and crash["degraded"] is True
    assert crash["restarts"] >= 4


def test_status_strict_exits_10_when_degraded(trio, ct):
    assert status_json(ct, "op-run", "op-stop")[0] == 0
    assert ct.ripdep("status", "--strict", "op-run", "op-stop").returncode == 0
    code, doc = status_json(ct, "op-run", "op-crash", strict=True)
    assert code == 10 and doc["exit_code"] == 10
    human = ct.ripdep("status", "--strict", "op-crash")
    assert human.returncode == 10 and "degraded: op-crash" in human.stderr


def test_status_human_plain_when_not_a_tty(trio, ct):
    out = ct.ripdep("status", "op-run", "op-stop", "op-crash").stdout
    assert "\033[" not in out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["APP", "DESIRED", "STATE", "PID"]
    assert any(l.startswith("op-crash") and "failed/failed" in l for l in lines)
    assert any(l.startswith("op-stop") and "stopped" in l and "inactive/dead" in l for l in lines)


def test_list_shows_only_ripdep_apps(deployed, ct):
    apps = json.loads(ct.ripdep("list", "--json").stdout)["data"]["apps"]
    assert {"op-run", "op-stop", "op-crash"} <= set(apps)
    assert "postgres" not in apps and "caddy" not in apps
    assert ct.ripdep("list").stdout.split() == apps


def test_logs_show_what_the_app_printed(deployed, ct):
    out = ct.ripdep("logs", "op-run", "-n", "200").stdout
    assert "probe listening on 127.0.0.1:" in out


@pytest.mark.parametrize("argv", [["status", "nope-app"], ["logs", "nope-app"], ["start", "nope-app"],
                                  ["stop", "nope-app"], ["restart", "nope-app"], ["deploy", "nope-app"]])
def test_unknown_app_exit_code(ct, argv):
    proc = ct.ripdep(*argv)
    assert proc.returncode == 7 and "not managed by ripdep" in proc.stderr + proc.stdout


def test_restart_start_and_crashed_recovery(running, crashed, ct):
    pid = running.main_pid()
    proc = ct.ripdep("restart", running.name, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["health"]["ok"] and running.main_pid() != pid
    # start brings the crashed one back (reset-failed), waits for health
    proc = ct.ripdep("start", crashed.name, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["health"]["ok"]
    assert ct.show("ripdep-op-crash.service", "ActiveState") == "active"
    # start of a running app changes nothing
    doc = json.loads(ct.ripdep("start", running.name, "--json").stdout)
    assert doc["changed"] is False


def test_stopped_stays_stopped_running_comes_back_after_services_restart(running, stopped, ct):
    pid = running.main_pid()
    ct.run("systemctl", "isolate", "rescue.target", check=True)
    assert ct.show("ripdep-op-run.service", "ActiveState") == "inactive"
    ct.run("systemctl", "isolate", "multi-user.target", check=True)
    ct.sh("for i in $(seq 100); do curl -sf http://127.0.0.1/op-run/healthz && exit 0; sleep 0.1; done; exit 1", check=True)
    assert running.main_pid() != pid
    assert ct.show("ripdep-op-stop.service", "ActiveState") == "inactive"
    # a later deploy of the stopped app leaves it stopped
    code, doc = stopped.deploy()
    assert code == 0 and doc["health"] is None
    assert ct.show("ripdep-op-stop.service", "ActiveState") == "inactive"
    assert ct.show("ripdep-op-stop.service", "UnitFileState") == "disabled"
    # and start brings it back for good
    assert ct.ripdep("start", stopped.name).returncode == 0
    assert ct.show("ripdep-op-stop.service", "UnitFileState") == "enabled"


def test_status_over_ssh_without_tty(running, deployed, ct):
    ct.sh("mkdir -p /root/.ssh && chmod 700 /root/.ssh && rm -f /root/.ssh/id_test* && "
          "ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_test && "
          "cat /root/.ssh/id_test.pub >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys && "
          "systemctl start ssh.service", check=True)
    ssh = ["ssh", "-i", "/root/.ssh/id_test", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-T", "root@127.0.0.1"]
    plain = ct.run(*ssh, "ripdep status op-run op-stop")
    assert plain.returncode == 0, plain.stderr
    assert "\033[" not in plain.stdout and plain.stdout.startswith("APP")
    assert "op-run" in plain.stdout
    as_json = ct.run(*ssh, "ripdep status --json op-run")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["data"]["apps"][0]["health"] == "ok"


def test_status_without_systemd_says_so_in_one_line():
    import subprocess


    # on the CI host itself PID 1 is not systemd
    proc = subprocess.run([f"{PREFIX}/bin/ripdep", "status"], capture_output=True, text=True)
    if proc.returncode == 0:
        pytest.skip("this host runs systemd")
    assert proc.returncode == 3
    assert proc.stderr.splitlines()[0] == "ripdep: error: systemd is not running as PID 1 on this machine"
