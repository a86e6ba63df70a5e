"""A real ansible-playbook calling ripdep: changed on the first run, changed=0 on the second."""

import re

from conftest import ROOT, TEST_VENV

PLAY = f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {TEST_VENV}/bin/python
  tasks:
    - name: deploy the example app with ripdep
      ansible.builtin.command: ripdep deploy ansi --manifest {ROOT}/examples/hello/ripdep.toml --json
      register: r
      changed_when: (r.stdout | from_json).changed
"""


def recap(out: str) -> dict:
    line = next(l for l in out.splitlines() if l.startswith("localhost"))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_playbook_changed_then_unchanged(ct):
    ct.write("/root/play.yml", PLAY)
    env = {"ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
           "ANSIBLE_NOCOLOR": "1", "HOME": "/root"}
    first = ct.run(f"{TEST_VENV}/bin/ansible-playbook", "/root/play.yml", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first.stdout)["changed"] == 1 and recap(first.stdout)["failed"] == 0
    second = ct.run(f"{TEST_VENV}/bin/ansible-playbook", "/root/play.yml", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second.stdout)["changed"] == 0 and recap(second.stdout)["ok"] == 1
    assert ct.get_json("http://127.0.0.1/ansi/")["database"] == "ansi"
