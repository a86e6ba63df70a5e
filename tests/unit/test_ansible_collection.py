"""The ripdep.ripdep collection without a target: its manifest writer and diff conversion (pure), its
documentation as ansible-doc reads it, its build, and the move playbook's syntax. The modules running
against real hosts are tests/integration/test_two_hosts.py."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "ansible"
COLLECTION = COLLECTIONS / "ansible_collections" / "ripdep" / "ripdep"
BIN = Path(sys.executable).parent


def load_utils():
    spec = importlib.util.spec_from_file_location("ripdep_module_utils", COLLECTION / "plugins/module_utils/ripdep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


utils = load_utils()


def test_an_inline_manifest_becomes_the_same_toml_every_time():
    manifest = {"source": "/srv/src/shop", "start": ["/usr/bin/python3", "app.py"], "health": "/healthz",
                "database": True, "env": {"GREETING": "Hello", "N": 3, "RATE": 0.5},
                "secrets": {"SECRET_KEY": "generate"}, "route": {"host": "shop.example.com", "tls": True},
                "limits": {"memory": "128M", "tasks": 64},
                "files": {"config.ini": {"template": "x"}}, "health_table": {}}
    text = utils.to_toml(manifest)
    assert tomllib.loads(text) == manifest
    assert utils.to_toml(dict(manifest)) == text
    assert text.startswith('source = "/srv/src/shop"\n')


@pytest.mark.parametrize("value", ['quote " and \\ backslash', "new\nline\ttab", "del \x7f bell \x07", "ünï 🚀",
                                   "[section]\nkey = 1", "' or 1=1"])
def test_strings_cannot_break_out_of_their_toml_value(value):
    text = utils.to_toml({"source": "/x", "env": {"V": value}, "weird key.with dots": value})
    assert tomllib.loads(text) == {"source": "/x", "env": {"V": value}, "weird key.with dots": value}


def test_floats_and_inline_tables():
    data = tomllib.loads(utils.to_toml({"a": [1.5, float("inf")], "b": [{"k": "v"}], "c": 1e20}))
    assert data["a"][0] == 1.5 and math.isinf(data["a"][1]) and data["b"] == [{"k": "v"}] and data["c"] == 1e20


@pytest.mark.parametrize("manifest, problem", [
    ({"env": {"A": None}}, "'env.A' is null"),
    ({"when": object()}, "has no TOML form"),
    ({1: "x"}, "keys must be strings"),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_what_toml_cannot_hold_is_refused_before_ripdep_runs(manifest, problem):
    with pytest.raises(utils.TomlError) as e:
        utils.to_toml(manifest)
    assert problem in str(e.value)


def test_ripdeps_unified_diffs_become_before_and_after():
    unified = ("--- /etc/ripdep/env/a.env (live)\n+++ /etc/ripdep/env/a.env (new)\n@@ -1,3 +1,3 @@\n"
               " HOST=\"127.0.0.1\"\n-GREETING=\"Hello\"\n+GREETING=\"Bonjour\"\n TOKEN=********\n"
               "@@ -9,1 +9,2 @@\n X=1\n+Y=2\n")
    created = "--- /dev/null\n+++ /etc/ripdep/apps/b.toml (new)\n@@ -0,0 +1 @@\n+source = \"/x\"\n"
    first, second = utils.ansible_diffs([unified, created])
    assert first == {"before_header": "/etc/ripdep/env/a.env (live)", "after_header": "/etc/ripdep/env/a.env (new)",
                     "before": 'HOST="127.0.0.1"\nGREETING="Hello"\nTOKEN=********\n...\nX=1\n',
                     "after": 'HOST="127.0.0.1"\nGREETING="Bonjour"\nTOKEN=********\n...\nX=1\nY=2\n'}
    assert second["before"] == "" and second["after"] == 'source = "/x"\n'


def test_failure_message_carries_error_hint_and_exit_code():
    doc = {"exit_code": 3, "msg": "refusing", "errors": [{"code": "precondition", "message": "refusing to destroy a",
                                                          "hint": "take one now", "details": []}]}
    assert utils.failure_message(doc) == "refusing to destroy a (hint: take one now) [ripdep exit 3: precondition]"
    assert utils.did_change({"check": True, "changed": False, "actions": [{"id": "x"}]})
    assert not utils.did_change({"check": False, "changed": False, "actions": []})


def ansible(tool: str, *args: str) -> subprocess.CompletedProcess:
    exe = BIN / tool
    if not exe.exists():
        pytest.skip(f"{tool} is not installed (tests/setup.sh installs ansible-core)")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False"}
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["app", "backup", "info"])
def test_ansible_doc_reads_each_module(name):
    proc = ansible("ansible-doc", "--json", f"ripdep.ripdep.{name}")
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    assert f"ripdep.ripdep.{name}" in proc.stdout
    options = json.loads(proc.stdout)[f"ripdep.ripdep.{name}"]["doc"]["options"]
    assert options["executable"]["default"] == "ripdep"  # from the shared doc fragment


def test_ansible_doc_reads_the_role():
    proc = ansible("ansible-doc", "-t", "role", "ripdep.ripdep.install")
    assert proc.returncode == 0 and "install.sh" in proc.stdout, proc.stderr


def test_the_collection_builds(tmp_path):
    proc = ansible("ansible-galaxy", "collection", "build", str(COLLECTION), "--output-path", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "ripdep-ripdep-0.1.0.tar.gz").exists()


def test_the_move_playbook_parses():
    proc = ansible("ansible-playbook", "--syntax-check", str(ROOT / "docs/examples/move-app.yml"),
                   "-e", "app=shop-a", "-e", "from_host=localhost", "-e", "to_host=localhost")
    assert proc.returncode == 0, proc.stdout + proc.stderr
