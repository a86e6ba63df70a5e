"""Each app in its own network namespace: no app reaches another's port, none can take another's
port over, Caddy reaches each app only through its PID-1-held socket (issue 8, item 3)."""

import json

import pytest

from conftest import App, manifest


def port_of(ct, app: str) -> int:
    return json.loads(ct.ripdep("status", app, "--json").stdout)["data"]["apps"][0]["port"]


@pytest.fixture(scope="module")
def pair(probe_factory):
    return probe_factory("net-a"), probe_factory("net-b")


def test_no_app_reaches_another_apps_port_and_root_does_not_either(pair, ct):
    a, b = pair
    port_b = port_of(ct, "net-b")
    assert b.op("connect", host="127.0.0.1", port=str(port_b))["ok"]  # positive control: its own
    assert not a.op("connect", host="127.0.0.1", port=str(port_b))["ok"]
    # nothing listens on the host's loopback for either app
    assert ct.run("curl", "-sS", "--max-time", "3", f"http://127.0.0.1:{port_b}/healthz").returncode != 0
    # ... and an unhardened process of a's user on the host cannot reach b either
    assert not a.control("connect", host="127.0.0.1", port=str(port_b))["ok"]
    # the one way in: the socket, which root (and Caddy) can use
    via_socket = ct.run("curl", "-sS", "--unix-socket", "/run/ripdep/net-b.sock", "http://x/healthz", check=True)
    assert json.loads(via_socket.stdout) == {"ok": True}
    assert ct.get_json(f"{b.url}healthz") == {"ok": True}  # through Caddy


def test_no_app_connects_to_another_apps_socket(pair, ct):
    a, _ = pair
    stat = ct.run("stat", "-c", "%U:%G %a %F", "/run/ripdep/net-b.sock", check=True).stdout.strip()
    assert stat == "root:caddy 660 socket"
    assert not a.op("connect_unix", path="/run/ripdep/net-b.sock")["ok"]
    assert not a.control("connect_unix", path="/run/ripdep/net-b.sock")["ok"]


def test_the_database_still_works_over_its_unix_socket(pair):
    a, _ = pair
    assert a.op("db", dbname="net-a") == {"ok": True, "result": ["net-a", "net-a"]}
    assert not a.op("connect", host="127.0.0.1", port="5432")["ok"]  # no TCP to PostgreSQL: no route


def test_a_stopped_apps_port_cannot_be_taken_over(pair, ct):
    a, b = pair
    port_b = port_of(ct, "net-b")
    assert ct.ripdep("stop", "net-b").returncode == 0
    assert ct.run("test", "-e", "/run/ripdep/net-b.sock").returncode != 0  # the socket goes with the app
    try:
        assert a.op("listen", port=str(port_b)) == {"ok": True, "result": "listening"}  # in a's own namespace
        answer = ct.curl(f"{b.url}healthz", "-o", "/dev/null", "-w", "%{http_code}").stdout
        assert answer == "502"  # not the impostor
    finally:
        proc = ct.ripdep("start", "net-b", "--json")
        # drops the impostor: it would stay in a's namespace and answer a's later connects to b's port
        restarted = ct.ripdep("restart", "net-a")
    assert proc.returncode == 0, proc.stdout
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert ct.get_json(f"{b.url}healthz") == {"ok": True}
    assert "impostor" not in ct.curl(f"{b.url}healthz").stdout


def test_the_exposure_score_with_a_private_network(pair, ct):
    score = json.loads(ct.ripdep("status", "net-a", "--json").stdout)["data"]["apps"][0]["exposure"]
    assert score <= 0.9, score
    assert ct.show("ripdep-net-a.service", "PrivateNetwork") == "yes"


def test_egress_apps_share_the_host_network_and_a_takeover_is_refused(ct):
    out, victim = App(ct, "out-a"), App(ct, "out-b")
    egress = manifest(raw='[network]\negress = ["192.0.2.1"]\n')
    assert out.deploy(egress)[0] == 0 and victim.deploy(egress)[0] == 0
    assert ct.show("ripdep-out-b.service", "PrivateNetwork") == "no"
    assert ct.get_json(f"{victim.url}healthz") == {"ok": True}
    port_b = port_of(ct, "out-b")
    assert ct.ripdep("stop", "out-b").returncode == 0
    assert out.op("listen", port=str(port_b))["ok"]  # the weaker mode: the host's loopback is shared
    try:
        proc = ct.ripdep("start", "out-b", "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == 4 and "not by app out-b" in doc["msg"] + json.dumps(doc["errors"]), doc
    finally:
        ct.ripdep("restart", "out-a")  # drops the impostor
    assert ct.ripdep("restart", "out-b").returncode == 0
    assert ct.get_json(f"{victim.url}healthz") == {"ok": True}


def test_shared_memory_and_run_lock_are_private_to_each_app(pair, ct):
    a, b = pair
    assert a.op("write", path="/dev/shm/planted") == {"ok": True, "result": "written"}
    assert a.op("read", path="/dev/shm/planted")["ok"]  # positive control: its own
    assert not b.op("read", path="/dev/shm/planted")["ok"]
    assert ct.run("test", "-e", "/dev/shm/planted").returncode != 0  # not the host's either
    assert a.op("write", path="/run/lock/planted")["ok"]
    assert ct.run("test", "-e", "/run/lock/planted").returncode != 0


def test_requests_to_a_crashed_app_do_not_break_its_socket_and_start_brings_it_back(ct):
    app = App(ct, "net-crash")
    assert app.deploy(manifest())[0] == 0
    unit = "ripdep-net-crash.service"
    for _ in range(12):  # until Restart= gives up
        if ct.show(unit, "ActiveState") == "failed":
            break
        ct.run("systemctl", "kill", "--signal=SIGKILL", unit)
        ct.sh(f"for i in $(seq 40); do s=$(systemctl show -P ActiveState {unit}); "
              "[ $s = active ] || [ $s = failed ] && break; sleep 0.1; done")
    assert ct.show(unit, "ActiveState") == "failed"
    for _ in range(5):  # each answered at once, none left pending to re-trigger the proxy in a loop
        assert ct.curl(f"{app.url}healthz", "-o", "/dev/null", "-w", "%{http_code}").stdout == "502"
    assert ct.show("ripdep-net-crash.proxy.socket", "Result") == "success"
    proc = ct.ripdep("start", "net-crash", "--json")  # at once: no limit to wait out
    assert proc.returncode == 0 and json.loads(proc.stdout)["health"]["ok"], proc.stdout
    assert ct.get_json(f"{app.url}healthz") == {"ok": True}
