"""[processes] and [cron] in the real systemd container (issue 12): a worker consuming what the web
process writes, a job on a short calendar seen in status, the sandbox on every unit, restarts of
only what changed, and the app's verbs acting on all of them."""

import json
import re
import time

import pytest

from conftest import App, ROOT

SOURCE = ROOT / "tests" / "fixtures" / "worker"


def manifest(worker: str = '["/usr/bin/python3", "app.py", "worker"]', extra: str = "",
             job: str = '{ schedule = "*:*:0/2", run = ["/usr/bin/python3", "app.py", "job", "OK"] }') -> str:
    return (f'source = "{SOURCE}"\nstart = ["/usr/bin/python3", "app.py", "web"]\nhealth = "/healthz"\n'
            f'[env]\nGREETING = "hi"\n[processes]\nworker = {worker}\n{extra}\n[cron]\ntick = {job}\n')


@pytest.fixture(scope="module")
def shop(ct):
    app = App(ct, "procs")
    code, doc = app.deploy(manifest())
    assert code == 0, doc
    return app


def wait_for(predicate, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def status_row(ct, app: str) -> dict:
    return json.loads(ct.ripdep("status", app, "--json").stdout)["data"]["apps"][0]


def test_a_worker_consumes_what_the_web_process_writes(ct, shop):
    ct.curl(f"{shop.url}enqueue?n=5", "-X", "POST")
    counts = wait_for(lambda: (c := ct.get_json(f"{shop.url}counts"))["done"] >= c["total"] >= 5 and c)
    assert counts, ct.get_json(f"{shop.url}counts")
    # same env (GREETING), same user, its own unit in the app's sandbox
    unit = "ripdep-procs.worker.service"
    assert ct.show(unit, "User") == "procs" and ct.show(unit, "ActiveState") == "active"
    assert "GREETING=hi" in ct.ripdep("logs", "procs", "--process", "worker", "-n", "200").stdout


@pytest.mark.parametrize("unit", ["ripdep-procs.worker.service", "ripdep-procs.job.tick.service"])
def test_every_new_unit_has_the_web_units_hardening(ct, shop, unit):
    out = ct.run("systemd-analyze", "security", "--no-pager", unit).stdout
    score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert score <= 1.5, out[-400:]
    for prop in ("NoNewPrivileges", "ProtectSystem", "PrivateNetwork", "MemoryDenyWriteExecute", "User"):
        assert ct.show(unit, prop) == ct.show("ripdep-procs.service", prop), prop


def test_a_job_runs_on_its_calendar_and_status_shows_it(ct, shop):
    job = wait_for(lambda: (j := status_row(ct, "procs")["jobs"][0])["last_run"] and j)
    assert job and job["job"] == "tick" and job["result"] == "success" and job["next_run"], status_row(ct, "procs")
    assert ct.get_json(f"{shop.url}counts")["job_runs"] >= 1
    assert "job ran: OK" in ct.ripdep("logs", "procs", "--job", "tick", "-n", "50").stdout


def test_a_changed_worker_restarts_only_the_worker(ct, shop):
    web, worker = shop.main_pid(), int(ct.show("ripdep-procs.worker.service", "MainPID"))
    code, doc = shop.deploy(manifest(worker='["/usr/bin/python3", "app.py", "worker", "--v2"]'))
    assert code == 0, doc
    assert [a["id"] for a in doc["actions"] if a["action"] == "restart"] == ["service:ripdep-procs.worker.service"]
    assert shop.main_pid() == web and int(ct.show("ripdep-procs.worker.service", "MainPID")) != worker
    code, doc = shop.deploy(manifest(worker='["/usr/bin/python3", "app.py", "worker", "--v2"]'))
    assert code == 0 and not doc["changed"], doc


def test_count_makes_instances_and_removing_a_process_removes_its_units(ct, shop):
    code, doc = shop.deploy(manifest(worker='{ start = ["/usr/bin/python3", "app.py", "worker"], count = 2 }'))
    assert code == 0, doc
    for i in (1, 2):
        assert ct.show(f"ripdep-procs.worker.{i}.service", "ActiveState") == "active"
    assert ct.run("test", "-e", "/etc/systemd/system/ripdep-procs.worker.service").returncode != 0
    ct.curl(f"{shop.url}enqueue?n=4", "-X", "POST")
    assert wait_for(lambda: (c := ct.get_json(f"{shop.url}counts"))["done"] == c["total"])
    text = manifest().replace('worker = ["/usr/bin/python3", "app.py", "worker"]\n', "")
    code, doc = shop.deploy(text)
    assert code == 0, doc
    left = ct.sh("ls /etc/systemd/system/ | grep '^ripdep-procs.worker' || true").stdout.strip()
    assert left == "" and ct.show("ripdep-procs.worker.1.service", "ActiveState") == "inactive"
    code, doc = shop.deploy(manifest())  # back as the other tests expect it
    assert code == 0, doc


def test_a_failing_job_makes_the_app_degraded(ct, shop):
    code, doc = shop.deploy(manifest(job='{ schedule = "*:*:0/2", run = ["/usr/bin/python3", "app.py", "job", "FAIL"] }'))
    assert code == 0, doc
    try:
        assert wait_for(lambda: status_row(ct, "procs")["jobs"][0]["result"] not in ("success", None))
        assert ct.ripdep("status", "procs", "--strict").returncode == 10
    finally:
        code, doc = shop.deploy(manifest())
        assert code == 0, doc
        ct.run("systemctl", "reset-failed", "ripdep-procs.job.tick.service")


def test_stop_and_start_act_on_every_process_and_timer(ct, shop):
    assert ct.ripdep("stop", "procs").returncode == 0
    for unit in ("ripdep-procs.worker.service", "ripdep-procs.job.tick.timer"):
        assert ct.show(unit, "ActiveState") == "inactive", unit
    assert ct.ripdep("start", "procs").returncode == 0
    for unit in ("ripdep-procs.worker.service", "ripdep-procs.job.tick.timer"):
        assert ct.show(unit, "ActiveState") == "active", unit


def test_a_bad_schedule_or_name_changes_nothing(ct, shop):
    before = ct.sh("ls /etc/systemd/system | grep ripdep-procs; md5sum /etc/systemd/system/ripdep-procs*").stdout
    for text in (manifest(job='{ schedule = "every blue moon", run = ["/bin/true"] }'),
                 manifest().replace("worker =", '"../../etc" =', 1)):
        code, doc = shop.deploy(text)
        assert code == 2, doc
    assert ct.sh("ls /etc/systemd/system | grep ripdep-procs; md5sum /etc/systemd/system/ripdep-procs*").stdout == before
    code, doc = shop.deploy(manifest())
    assert code == 0 and not doc["changed"], doc


def test_destroy_removes_every_process_and_job(ct):
    app = App(ct, "procs-gone")
    code, doc = app.deploy(manifest())
    assert code == 0, doc
    assert ct.ripdep("destroy", "procs-gone", "--yes", "--backup").returncode == 0
    left = ct.sh("ls /etc/systemd/system | grep '^ripdep-procs-gone' || true").stdout.strip()
    assert left == "" and ct.show("ripdep-procs-gone.worker.service", "ActiveState") == "inactive"


def test_a_backup_stops_nothing_and_records_what_ran(ct, shop):
    web, worker = shop.main_pid(), int(ct.show("ripdep-procs.worker.service", "MainPID"))
    proc = ct.ripdep("backup", "procs", "--json")
    assert proc.returncode == 0, proc.stdout
    folder = json.loads(proc.stdout)["data"]["backup"]["path"]
    facts = ct.run("cat", f"{folder}/backup.toml", check=True).stdout
    assert 'processes = [\n    "ripdep-procs.worker.service",\n]' in facts or \
        'processes = ["ripdep-procs.worker.service"]' in facts, facts
    release = json.loads(ct.ripdep("status", "procs", "--json").stdout)["data"]["apps"][0]["release"]
    assert f'release = "{release}"' in facts
    assert shop.main_pid() == web and int(ct.show("ripdep-procs.worker.service", "MainPID")) == worker
