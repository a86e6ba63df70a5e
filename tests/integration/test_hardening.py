"""Hardening proven by effects inside the running unit, each with a positive control: the same
operation, as the same user, from an unhardened transient unit, succeeds."""

import pytest

from conftest import App, manifest


@pytest.fixture(scope="module")
def probe(probe_factory, ct):
    text = manifest(raw='[limits]\nmemory = "64M"\ntasks = 64\n')
    app = probe_factory("probe", text)
    # a folder the app's user owns outside its state dir, and a file in /home
    ct.sh("mkdir -p /opt/probe-owned && chown probe:probe /opt/probe-owned && "
          "echo secret-home > /home/placed.txt && chmod 644 /home/placed.txt", check=True)
    return app


def test_cannot_write_own_folder_outside_state_dir(probe):
    inside = probe.op("write", path="/opt/probe-owned/x")
    assert not inside["ok"] and "Read-only file system" in inside["error"]
    assert probe.control("write", path="/opt/probe-owned/x")["ok"]
    # its state dir is writable (the one place it may write)
    assert probe.op("write", path="/var/lib/ripdep/apps/probe/data")["ok"]


def test_cannot_write_own_code(probe):
    assert not probe.op("write", path="/srv/ripdep/probe/app.py")["ok"]


def test_home_is_invisible(probe):
    inside = probe.op("read", path="/home/placed.txt")
    assert not inside["ok"]
    assert probe.control("read", path="/home/placed.txt") == {"ok": True, "result": "secret-home\n"}


def test_no_connection_beyond_loopback(probe, ct):
    # an extra address on lo with a listener: reachable for a control unit, refused for the app
    ct.sh("ip addr add 192.0.2.10/32 dev lo 2>/dev/null; "
          "systemd-run --unit=extra-listener /usr/bin/python3 -m http.server --bind 192.0.2.10 8099", check=True)
    ct.sh("for i in $(seq 50); do ss -Hltn | grep -q 192.0.2.10:8099 && exit 0; sleep 0.1; done; exit 1", check=True)
    assert probe.control("connect", host="192.0.2.10", port="8099")["ok"]
    inside = probe.op("connect", host="192.0.2.10", port="8099")
    # its own network namespace has no route anywhere
    assert not inside["ok"] and "unreachable" in inside["error"], inside
    # with network.egress it shares the host's network: IPAddressDeny= drops what is not allowed

    out = App(ct, "egress-probe")
    assert out.deploy(manifest(raw='[network]\negress = ["192.0.2.20"]\n'))[0] == 0
    denied = out.op("connect", host="192.0.2.10", port="8099")
    assert not denied["ok"] and ("timed out" in denied["error"] or "not permitted" in denied["error"]), denied
    # the host's loopback stays open to it (PostgreSQL on 127.0.0.1)
    assert out.op("connect", host="127.0.0.1", port="5432")["ok"]


def test_memory_max_kills_an_allocation_over_the_limit(probe, ct):
    assert probe.control("alloc", mb="150")["ok"]  # no limit outside the unit
    assert probe.op("alloc", mb="16")["ok"]
    pid = probe.main_pid()
    killed = ct.curl(f"{probe.url}op/alloc?mb=150")
    assert killed.returncode != 0 or '"ok": true' not in killed.stdout
    ct.sh("for i in $(seq 100); do [ \"$(systemctl show -P NRestarts ripdep-probe.service)\" -ge 1 ] && exit 0; sleep 0.1; done; exit 1",
          check=True)
    journal = ct.run("journalctl", "-u", "ripdep-probe.service", "--no-pager").stdout
    # the kernel's OOM killer in the unit's memory cgroup: SIGKILL (cgroup v1 reports no oom result)
    assert "status=9/KILL" in journal or "oom-kill" in journal
    # and systemd brought it back (Restart=on-failure)
    ct.sh("for i in $(seq 100); do curl -sf http://127.0.0.1/probe/healthz && exit 0; sleep 0.1; done; exit 1", check=True)
    assert probe.main_pid() != pid


def test_no_capabilities_no_new_privileges(probe, ct):
    status = ct.run("cat", f"/proc/{probe.main_pid()}/status", check=True).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["CapBnd"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"


def test_runs_as_its_own_user_in_its_code_folder(probe, ct):
    inside = probe.op("whoami")
    uid = int(ct.run("id", "-u", "probe", check=True).stdout)
    tree = ct.run("readlink", "-f", "/srv/ripdep/probe", check=True).stdout.strip()  # the live release's
    assert inside["ok"] and inside["result"]["cwd"] == tree and tree.startswith("/srv/ripdep/probe.releases/")
    assert inside["result"]["uid"] == uid
