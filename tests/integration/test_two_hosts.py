"""ripdep past one VM: the ripdep.ripdep collection run by a real ansible-playbook over real SSH
against two hosts, and an app moved from one to the other (docs/ansible.md).

Two systemd containers (tests/ct.sh, CT_PERSIST so that a reboot keeps their disks) are joined by a
bridge this module makes, with static addresses, each running the sshd of its (the host's) root file
system; the controller is this machine, with a throw-away key. ripdep is installed in them by the
collection's role, from a source archive of this checkout, offline from tests/setup.sh's wheelhouse.

Every test brings the fleet to the state it needs with the same playbooks (which are idempotent), so
none relies on another having run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CT, PROBE_SRC, ROOT, TEST_VENV, Container

BRIDGE = "rdans0"
NET = "10.231.47"
HOSTS = {"host-a": f"{NET}.2", "host-b": f"{NET}.3"}
WHEELS = Path(os.environ.get("RIPDEP_TEST_WHEELS", "/var/cache/ripdep-test-wheels"))
PREFIX_IN_CT = "/opt/ripdep-fleet"  # not on the host: the role's install is a fresh one
ANSIBLE = ROOT / "ansible"

DEPLOY = f"""
- name: Three apps over two hosts
  hosts: fleet
  gather_facts: false
  vars:
    greeting: Hello
    layout:
      host-a: [{{name: alpha, state: started}}]
      host-b: [{{name: beta, state: started}}, {{name: gamma, state: "{{{{ gamma_state | default('started') }}}}"}}]
  tasks:
    - name: Apps from inline manifests
      ripdep.ripdep.app:
        name: "{{{{ item.name }}}}"
        state: "{{{{ item.state }}}}"
        manifest:
          source: {PROBE_SRC}
          start: ["/usr/bin/python3", "app.py"]
          health: /healthz
          env:
            GREETING: "{{{{ greeting }}}}"
          secrets:
            TOKEN: generate
          limits:
            memory: 128M
      loop: "{{{{ layout[inventory_hostname] }}}}"
"""

INSTALL = """
- name: Install ripdep
  hosts: fleet
  gather_facts: false
  roles:
    - role: ripdep.ripdep.install
"""

ABSENT = """
- name: Remove alpha without a backup
  hosts: host-a
  gather_facts: false
  tasks:
    - name: alpha absent
      ripdep.ripdep.app:
        name: alpha
        state: absent
"""

STATUS = """
- name: Every host's apps in one table
  hosts: fleet
  gather_facts: false
  tasks:
    - name: ripdep status
      ripdep.ripdep.info:
    - name: One table
      run_once: true
      ansible.builtin.debug:
        msg: |-
          {% for h in ansible_play_hosts | sort %}{% for a, r in hostvars[h].ripdep_apps | dictsort %}
          {{ h }} {{ a }} {{ r.active_state }} {{ r.health }} {{ r.url }}{% endfor %}{% endfor %}
"""


def recap(out: str) -> dict[str, dict[str, int]]:
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in re.finditer(r"^(host-[ab])\s+:\s+(.*)$", out, re.M)}


class Host(Container):
    """A host of the fleet: its own network address on the test's bridge, a disk that survives a
    reboot, no ripdep bound in from this machine (the role installs it)."""

    def __init__(self, name: str, address: str):
        super().__init__(f"ripdep-ct-ansible-{name[-1]}")
        self.inventory_name, self.address = name, address
        self.env.update(CT_BINDS=f"--bind={ROOT} --bind-ro={WHEELS}", CT_PERSIST="1",
                        CT_NETWORK=f"--network-bridge={BRIDGE}")

    def start(self) -> None:
        subprocess.run([str(CT), "start"], env=self.env, check=True, timeout=120, capture_output=True)

    def boot(self, public_key: str) -> None:
        self.start()
        self.write("/etc/systemd/network/50-host0.network",
                   f"[Match]\nName=host0\n\n[Network]\nAddress={self.address}/24\nLinkLocalAddressing=no\n"
                   "IPv6AcceptRA=no\n")
        self.run("systemctl", "enable", "--now", "systemd-networkd.service", check=True)
        self.write("/root/.ssh/authorized_keys", public_key, mode="0600")
        self.run("chmod", "0700", "/root/.ssh", check=True)
        self.wait_ssh()

    def wait_ssh(self) -> None:
        self.sh(f"for i in $(seq 100); do ip -br addr show host0 | grep -q {self.address}/ && "
                "systemctl is-active --quiet ssh && exit 0; sleep 0.1; done; exit 1", check=True)

    def reboot(self) -> None:
        """Every service stops in order, the machine is gone, and it boots again on the same disk."""
        self.stop()
        self.start()
        self.wait_ssh()

    def purge(self) -> None:
        subprocess.run([str(CT), "purge"], env=self.env, timeout=60, capture_output=True)


class Fleet:
    def __init__(self, hosts: dict[str, Host], folder: Path):
        self.hosts, self.folder = hosts, folder
        self.env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "LANG")},
                    "HOME": str(folder), "ANSIBLE_COLLECTIONS_PATH": str(ANSIBLE), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PIPELINING": "True",
                    "ANSIBLE_LOCAL_TEMP": str(folder / "tmp"), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(folder / "cp"),
                    "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
                    "TMPDIR": str(folder / "tmp")}

    def playbook(self, text_or_path: str | Path, *args: str) -> subprocess.CompletedProcess:
        path = text_or_path
        if isinstance(text_or_path, str):
            path = self.folder / "play.yml"
            path.write_text(text_or_path)
        return subprocess.run([f"{TEST_VENV}/bin/ansible-playbook", "-i", str(self.folder / "inventory"),
                               str(path), *args], env=self.env, capture_output=True, text=True, timeout=600)

    def ansible(self, pattern: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([f"{TEST_VENV}/bin/ansible", "-i", str(self.folder / "inventory"), pattern, *args],
                              env=self.env, capture_output=True, text=True, timeout=300)

    def ssh(self, user: str, host: str, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-T", "-i", str(self.folder / "key"), "-o", "BatchMode=yes",
                               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                               "-o", "LogLevel=ERROR", f"{user}@{self.hosts[host].address}", command],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


def source_archive(target: Path) -> None:
    """What the role ships: this checkout's install.sh and package (as `git archive` would)."""
    with tarfile.open(target, "w:gz") as tar:
        for name in ("install.sh", "pyproject.toml", "README.md", "ripdep", "units", "caddy"):
            tar.add(ROOT / name, arcname=name, filter=lambda t: None if "__pycache__" in t.name else t)


@pytest.fixture(scope="module")
def fleet():
    problems = [p for p, bad in (("not root", os.geteuid() != 0),
                                 ("systemd-nspawn missing", not shutil.which("systemd-nspawn")),
                                 ("ssh missing (apt-get install openssh-client openssh-server)",
                                  not shutil.which("ssh") or not Path("/usr/sbin/sshd").exists()),
                                 (f"no wheelhouse at {WHEELS} (tests/setup.sh)", not any(WHEELS.glob("pystemd-*.whl"))),
                                 (f"{TEST_VENV}/bin/ansible-playbook missing (tests/setup.sh)",
                                  not Path(f"{TEST_VENV}/bin/ansible-playbook").exists())) if bad]
    if problems:
        if os.environ.get("RIPDEP_REQUIRE_INTEGRATION"):
            pytest.fail("two-host tests cannot run: " + "; ".join(problems))
        pytest.skip("two-host tests need: " + "; ".join(problems))
    folder = Path(tempfile.mkdtemp(prefix="ripdep-fleet-"))
    (folder / "tmp").mkdir()
    (folder / "cp").mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ripdep-fleet-test", "-f",
                    str(folder / "key")], check=True)
    source_archive(folder / "ripdep.tar.gz")
    hosts = {name: Host(name, address) for name, address in HOSTS.items()}
    inventory = "[fleet]\n" + "".join(f"{h.inventory_name} ansible_host={h.address}\n" for h in hosts.values())
    inventory += (f"\n[fleet:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n"
                  f"ansible_ssh_private_key_file={folder}/key\n"
                  "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
                  f"ripdep_archive={folder}/ripdep.tar.gz\nripdep_prefix={PREFIX_IN_CT}\n"
                  f"ripdep_install_env={json.dumps({'PIP_NO_INDEX': '1', 'PIP_FIND_LINKS': str(WHEELS)})}\n")
    (folder / "inventory").write_text(inventory)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)  # a leftover of an aborted run
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{NET}.1/24", "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        key = (folder / "key.pub").read_text()
        with ThreadPoolExecutor(len(hosts)) as pool:  # both boot at once
            list(pool.map(lambda h: h.boot(key), hosts.values()))
        f = Fleet(hosts, folder)
        first = f.playbook(INSTALL)
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        assert all(r["changed"] > 0 for r in recap(first.stdout).values()), first.stdout
        yield f
    finally:
        with ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(lambda h: h.purge(), hosts.values()))
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def deployed(fleet):
    ok(fleet.playbook(DEPLOY))
    return fleet


def test_install_role_second_run_changes_nothing(fleet):
    out = ok(fleet.playbook(INSTALL))
    assert {h: r["changed"] for h, r in recap(out).items()} == {"host-a": 0, "host-b": 0}, out
    for host in fleet.hosts.values():
        assert host.run("readlink", "-f", "/usr/local/bin/ripdep", check=True).stdout.startswith(PREFIX_IN_CT)


def test_three_apps_over_two_hosts_then_a_rerun_changes_nothing(deployed):
    out = ok(deployed.playbook(DEPLOY))
    counts = recap(out)
    assert {h: r["changed"] for h, r in counts.items()} == {"host-a": 0, "host-b": 0}, out
    assert all(r["failed"] == 0 and r["ok"] >= 1 for r in counts.values())
    a, b = deployed.hosts["host-a"], deployed.hosts["host-b"]
    assert a.get_json("http://127.0.0.1/alpha/healthz") == {"ok": True}
    assert b.get_json("http://127.0.0.1/beta/healthz") == {"ok": True}
    assert b.get_json("http://127.0.0.1/gamma/op/env?name=GREETING")["result"] == "Hello"
    assert a.run("ripdep", "list", check=True).stdout.split() == ["alpha"]
    # the fleet's status in one table, from the info module's facts
    out = ok(deployed.playbook(STATUS))
    for line in ("host-a alpha active ok http://127.0.0.1/alpha/", "host-b beta active ok http://127.0.0.1/beta/",
                 "host-b gamma active ok http://127.0.0.1/gamma/"):
        assert line in out, out


def test_check_diff_of_a_changed_env_value_shows_it_and_changes_nothing(deployed):
    b = deployed.hosts["host-b"]
    before = b.sh("sha256sum /etc/ripdep/apps/gamma.toml /etc/ripdep/env/gamma.env", check=True).stdout
    pid = b.show("ripdep-gamma.service", "MainPID")
    out = ok(deployed.playbook(DEPLOY, "--check", "--diff", "-e", "greeting=Bonjour"))
    assert '-GREETING = "Hello"' in out and '+GREETING = "Bonjour"' in out, out  # the manifest
    assert '-GREETING="Hello"' in out and '+GREETING="Bonjour"' in out, out  # the env file
    assert "TOKEN=********" in out and b.run("cat", "/etc/ripdep/secrets/gamma/TOKEN").stdout not in out
    assert recap(out)["host-b"]["changed"] == 1 and recap(out)["host-a"]["changed"] == 1
    assert b.sh("sha256sum /etc/ripdep/apps/gamma.toml /etc/ripdep/env/gamma.env", check=True).stdout == before
    assert b.show("ripdep-gamma.service", "MainPID") == pid
    assert b.get_json("http://127.0.0.1/gamma/op/env?name=GREETING")["result"] == "Hello"


def test_stopped_survives_a_reboot(deployed):
    b = deployed.hosts["host-b"]
    try:
        out = ok(deployed.playbook(DEPLOY, "-e", "gamma_state=stopped"))
        assert recap(out)["host-b"]["changed"] == 1 and recap(out)["host-a"]["changed"] == 0
        b.reboot()
        assert b.show("ripdep-gamma.service", "ActiveState") == "inactive"
        assert b.show("ripdep-gamma.service", "UnitFileState") == "disabled"
        assert b.get_json("http://127.0.0.1/beta/healthz") == {"ok": True}  # what should run came back
        out = ok(deployed.playbook(DEPLOY, "-e", "gamma_state=stopped"))
        assert recap(out)["host-b"]["changed"] == 0, out
        rows = json.loads(b.run("ripdep", "status", "--json", "beta", "gamma", check=True).stdout)["data"]["apps"]
        assert {r["app"]: (r["desired"], r["health"]) for r in rows} == {
            "beta": ("running", "ok"), "gamma": ("stopped", "unchecked")}
    finally:
        ok(deployed.playbook(DEPLOY))
    assert b.get_json("http://127.0.0.1/gamma/healthz") == {"ok": True}


def test_absent_without_a_backup_fails_with_ripdeps_message(deployed):
    proc = deployed.playbook(ABSENT)
    assert proc.returncode == 2, proc.stdout
    assert "refusing to destroy alpha: no verified backup younger than 900 s" in proc.stdout
    assert "hint: take one now: ripdep destroy alpha --yes --backup" in proc.stdout
    assert "[ripdep exit 3: precondition]" in proc.stdout
    assert deployed.hosts["host-a"].get_json("http://127.0.0.1/alpha/healthz") == {"ok": True}


def test_status_over_ssh_needs_no_tty_and_no_password(deployed):
    b = deployed.hosts["host-b"]
    b.sh("id ops >/dev/null 2>&1 || useradd --create-home --shell /bin/bash ops", check=True)
    b.write("/home/ops/.ssh/authorized_keys", (deployed.folder / "key.pub").read_text(), mode="0600")
    b.run("chown", "-R", "ops:ops", "/home/ops/.ssh", check=True)
    b.write("/etc/sudoers.d/ripdep-status",
            "ops ALL=(root) NOPASSWD: /usr/local/bin/ripdep status, /usr/local/bin/ripdep status *\n", mode="0440")
    table = deployed.ssh("ops", "host-b", "sudo -n ripdep status")
    assert table.returncode == 0, table.stderr
    assert "beta" in table.stdout and "\x1b[" not in table.stdout  # no TTY: no colours
    doc = json.loads(deployed.ssh("ops", "host-b", "sudo -n ripdep status --json").stdout)
    assert {r["app"] for r in doc["data"]["apps"]} >= {"beta", "gamma"}
    refused = deployed.ssh("ops", "host-b", "sudo -n ripdep stop beta")
    assert refused.returncode != 0 and "password is required" in refused.stderr
    # ad hoc, every host at once
    out = ok(deployed.ansible("fleet", "-m", "ripdep.ripdep.info", "-o"))
    assert out.count("SUCCESS") == 2 and '"degraded": false' in out


WANDER = f"""
- name: An app to move
  hosts: host-a
  gather_facts: false
  tasks:
    - name: wander on host-a
      ripdep.ripdep.app:
        name: wander
        manifest:
          source: {PROBE_SRC}
          start: ["/usr/bin/python3", "app.py"]
          health: /healthz
          database_locale: C
          secrets:
            TOKEN: generate
"""


def test_move_an_app_to_another_host(deployed):
    a, b = deployed.hosts["host-a"], deployed.hosts["host-b"]
    b.run("ripdep", "destroy", "wander", "--yes", "--backup")  # moved there by an earlier run of this test
    ok(deployed.playbook(WANDER))
    a.run("runuser", "-u", "wander", "--", "psql", "-XAq", "-h", "/run/postgresql", "-d", "wander", "-c",
          "CREATE TABLE probe (v text); INSERT INTO probe VALUES ('probe-row')", check=True)
    assert a.get_json("http://127.0.0.1/wander/op/write?path=/var/lib/ripdep/apps/wander/probe.txt")["ok"]
    token = a.run("cat", "/etc/ripdep/secrets/wander/TOKEN", check=True).stdout
    out = ok(deployed.playbook(ROOT / "docs/examples/move-app.yml", "-e", "app=wander", "-e", "from_host=host-a",
                               "-e", "to_host=host-b"))
    assert recap(out)["host-a"]["failed"] == 0
    # the data arrived, served through host-b's Caddy
    row = b.run("runuser", "-u", "wander", "--", "psql", "-XAt", "-h", "/run/postgresql", "-d", "wander", "-c",
                "SELECT v FROM probe", check=True).stdout.strip()
    assert row == "probe-row"
    assert b.get_json("http://127.0.0.1/wander/op/read?path=/var/lib/ripdep/apps/wander/probe.txt")["result"] == "probe\n"
    assert b.run("cat", "/etc/ripdep/secrets/wander/TOKEN", check=True).stdout == token
    assert b.run("runuser", "-u", "postgres", "--", "psql", "-XAtc",
                 "select datcollate from pg_database where datname = 'wander'", check=True).stdout.strip() == "C"
    assert len(json.loads(b.run("ripdep", "backup", "list", "wander", "--json").stdout)["data"]["backups"]) == 1
    assert b.run("test", "-e", "/var/lib/ripdep-incoming/wander").returncode != 0  # the copy is gone
    # and host-a no longer runs it; its backups stay there
    assert "wander" not in a.run("ripdep", "list", check=True).stdout.split()
    assert a.run("getent", "passwd", "wander").returncode != 0
    assert a.curl("http://127.0.0.1/wander/healthz", "-o", "/dev/null", "-w", "%{http_code}").stdout != "200"
    assert a.run("ls", "/var/backups/ripdep/wander").stdout.strip()
    # moving it back onto a host that has it is refused before anything changes
    again = deployed.playbook(ROOT / "docs/examples/move-app.yml", "-e", "app=wander", "-e", "from_host=host-b",
                              "-e", "to_host=host-b")
    assert again.returncode != 0 and "two different hosts" in again.stdout
