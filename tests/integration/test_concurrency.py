"""Parallel deploys, the per-app lock, and convergence after a SIGKILL at every step boundary."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

from conftest import App, CT, manifest


def test_eight_parallel_deploys_get_eight_distinct_ports(ct):
    apps = [App(ct, f"par-{i}") for i in range(8)]
    for app in apps:
        ct.write(app.manifest_path, manifest())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: ct.deploy_json(a.name, "--manifest", a.manifest_path), apps))
    # every one succeeds; when one does not, show its message and errors (a bare list of codes hid them)
    failed = {doc.get("app"): (code, doc.get("msg"), doc.get("errors")) for code, doc in results if code != 0}
    assert not failed, failed
    assert len(results) == 8
    ports = {doc["port"] for _, doc in results}
    assert len(ports) == 8
    for app in apps:
        assert ct.get_json(f"{app.url}healthz") == {"ok": True}


def test_concurrent_deploy_of_one_app_gets_the_lock_code(probe_factory, ct):
    app = probe_factory("locked")
    lock, held = "/run/ripdep/locks/locked.lock", "/run/ripdep-test-lock-holder.pid"
    ct.run("rm", "-f", held, check=True)
    # flock runs the shell only once it holds the lock: the pid file appears only then (a process
    # merely waiting for the lock, or not started yet, must not count as holding it)
    holder = subprocess.Popen([*ct_exec(ct), "flock", "--wait", "10", lock, "/bin/sh", "-c",
                               f"echo $$ > {held}; exec sleep 20"], env=ct.env)
    try:
        ct.sh(f"for i in $(seq 200); do [ -s {held} ] && exit 0; sleep 0.05; done; exit 1", check=True)
        assert ct.run("flock", "--nonblock", lock, "true").returncode == 1  # it really is held
        code, doc = ct.deploy_json(app.name)
        assert code == 5 and doc["errors"][0]["code"] == "lock_held"
        assert "another ripdep run" in doc["msg"]
    finally:
        # end the holder by its pid (its sleep); flock, nsenter and ct.sh then exit by themselves
        ct.sh(f"[ -s {held} ] && kill $(cat {held}); rm -f {held}")
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
    code, doc = ct.deploy_json(app.name)
    assert code == 0 and doc["changed"] is False


def ct_exec(ct):
    return [str(CT), "exec"]


def test_sigkill_at_every_step_boundary_converges(ct):
    # a full first deploy applies this many changes; kill after each of them in turn
    probe = App(ct, "crash-count")
    code, doc = probe.deploy(manifest())
    assert code == 0
    total = len([a for a in doc["actions"] if a["action"] != "allocate"])
    assert total >= 10
    for n in range(1, total + 1):
        app = App(ct, f"crash-{n}")
        ct.write(app.manifest_path, manifest())
        killed = ct.ripdep("deploy", app.name, "--manifest", app.manifest_path, "--json",
                           env={"RIPDEP_TEST_CRASH_AFTER": str(n)})
        assert killed.returncode == 137, (n, killed.returncode)  # 128 + SIGKILL: it really died mid-run
        code, doc = ct.deploy_json(app.name, "--manifest", app.manifest_path)
        assert code == 0, (n, doc)
        assert doc["health"]["ok"]
        code, doc = ct.deploy_json(app.name)
        assert code == 0 and doc["changed"] is False, (n, doc["actions"])
        assert ct.get_json(f"{app.url}healthz") == {"ok": True}
