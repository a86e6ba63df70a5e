"""Secret names from users and from SSM never reach a path outside the store (issue 8, item 7)."""

import os

import pytest

from ripdep import appconfig, engine, secret, ssm
from ripdep.errors import BadInput, Conflict
from ripdep.paths import Paths
from ripdep.secret import Secret

HOSTILE_NAMES = ["../../ripdep.toml", "../../../victim", "/root/x", "..", ".", "", "a/b", "A B", "X\nY", "1A",
                 ".hidden", "-rf", "A=B", "Ä"]


@pytest.fixture(autouse=True)
def as_root(monkeypatch):
    """The store is root's: let the tests run unprivileged too."""
    monkeypatch.setattr(engine, "require_root", lambda: None)
    if os.geteuid() != 0:
        monkeypatch.setattr(os, "chown", lambda *a, **k: None)
        monkeypatch.setattr(os, "fchown", lambda *a, **k: None)


@pytest.fixture
def host(tmp_path):
    """A host root with app hello installed (manifest, state, one stored secret) and files that
    hostile names point at."""
    paths = Paths(root=tmp_path)
    code = tmp_path / "src"
    code.mkdir()
    paths.manifests.mkdir(parents=True)
    paths.manifest("hello").write_text(f'source = "{code}"\nstart = "/bin/app"\n[secrets]\nAPI_KEY = "stored"\n'
                                       'GEN = "generate"\n')
    paths.state_root.mkdir(parents=True)
    paths.state("hello").write_text("")
    secret.write_secret(paths.secrets("hello"), "API_KEY", Secret("s3cret"))
    paths.host_config.write_text("port_min = 20000\n")  # ../../ripdep.toml from the store
    (tmp_path / "etc/victim").write_text("keep me")  # ../../../victim
    return paths


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_secret_unset_refuses_names_before_touching_anything(host, name):
    before = {p: p.read_bytes() for p in host.root.rglob("*") if p.is_file()}
    with pytest.raises(BadInput, match="secret unset: invalid variable name"):
        appconfig.secret_unset("hello", name, no_restart=True, paths=host)
    assert {p: p.read_bytes() for p in host.root.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_secret_set_and_rotate_refuse_names(host, name):
    with pytest.raises(BadInput, match="secret set: invalid variable name"):
        appconfig.secret_set("hello", name, Secret("x"), no_restart=True, paths=host)
    with pytest.raises(BadInput, match="secret rotate: invalid variable name"):
        appconfig.secret_rotate("hello", name, no_restart=True, paths=host)


def test_secret_unset_of_a_real_secret_still_works(host):
    result = appconfig.secret_unset("hello", "API_KEY", no_restart=True, paths=host)
    assert [c.action for c in result.steps[0].changes] == ["update", "remove"]
    assert secret.read_store(host.secrets("hello")) == {}
    assert host.host_config.exists() and (host.root / "etc/victim").exists()


def test_secret_list_shows_names_and_times(host):
    rows = {r["name"]: r for r in appconfig.secret_list("hello", paths=host)}
    assert rows["API_KEY"]["has_value"] and rows["API_KEY"]["last_change"].endswith("Z")
    assert not rows["GEN"]["has_value"] and rows["GEN"]["last_change"] is None


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_store_functions_refuse_names(tmp_path, name):
    for call in (lambda: secret.write_secret(tmp_path / "store", name, Secret("x")),
                 lambda: secret.remove_secret(tmp_path / "store", name),
                 lambda: secret.secret_mtime(tmp_path / "store", name)):
        with pytest.raises(BadInput):
            call()


def test_a_link_in_the_store_is_never_followed(tmp_path):
    store, outside = tmp_path / "secrets/hello", tmp_path / "outside"
    secret.write_secret(store, "REAL", Secret("v"))
    outside.write_text("not a secret")
    (store / "LINK").symlink_to(outside)
    with pytest.raises(Conflict, match="is a link"):
        secret.read_store(store)
    secret.write_secret(store, "LINK", Secret("new"))  # replaces the link, not the file it points at
    assert outside.read_text() == "not a secret" and not (store / "LINK").is_symlink()
    (store / "LINK2").symlink_to(outside)
    assert secret.remove_secret(store, "LINK2") and outside.exists()
    assert secret.read_store(store) == {"LINK": Secret("new"), "REAL": Secret("v")}


def test_a_fifo_in_the_store_is_refused_without_blocking(tmp_path):
    store = tmp_path / "store"
    secret.write_secret(store, "A", Secret("v"))
    os.mkfifo(store / "PIPE")
    with pytest.raises(Conflict, match="not a regular file"):
        secret.read_store(store)


def test_a_store_folder_that_is_a_link_is_refused(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "A").write_text("x")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/hello").symlink_to(real)
    for call in (lambda: secret.read_store(tmp_path / "secrets/hello"),
                 lambda: secret.write_secret(tmp_path / "secrets/hello", "B", Secret("y")),
                 lambda: secret.remove_secret(tmp_path / "secrets/hello", "A")):
        with pytest.raises(Conflict, match="link or a file"):
            call()
    assert sorted(os.listdir(real)) == ["A"]


def test_names_ripdep_never_writes_are_ignored(tmp_path):
    store = tmp_path / "store"
    secret.write_secret(store, "A", Secret("v"))
    (store / "bad name\nX=1").write_text("injected")
    (store / ".A.1234.tmp").write_text("half written")
    assert secret.read_store(store) == {"A": Secret("v")}


def test_store_files_are_root_only(tmp_path):
    store = tmp_path / "store"
    secret.write_secret(store, "A", Secret("v"))
    assert os.stat(store).st_mode & 0o777 == 0o700 and os.stat(store / "A").st_mode & 0o777 == 0o600
    assert [n for n in os.listdir(store) if n.startswith(".")] == []


def test_secret_values_on_stdin_have_the_env_size_limit():
    assert appconfig.read_secret_value(b"x" * 32768 + b"\n").reveal() == "x" * 32768
    with pytest.raises(BadInput, match="bytes"):
        appconfig.read_secret_value(b"x" * 32769)


# --- SSM parameter names ------------------------------------------------------------------------

@pytest.mark.parametrize("parameter", ["/app/port", "/app/PORT", "/app/host", "/app/database-url", "/app/database.url",
                                       "/app/mount/path", "/app/credentials_directory"])
def test_ssm_names_cannot_override_what_ripdep_sets(parameter):
    with pytest.raises(BadInput, match="set by ripdep"):
        ssm.env_name("/app/", parameter)


@pytest.mark.parametrize("parameter", ["/app/1x", "/app/a b", "/app/", "/app/ä", "/other/x"])
def test_ssm_names_must_be_variable_names(parameter):
    with pytest.raises(BadInput):
        ssm.env_name("/app/", parameter)


def test_ssm_names_map_predictably():
    assert ssm.env_name("/ripdep/shop-a/", "/ripdep/shop-a/db/password") == "DB_PASSWORD"
    assert ssm.env_name("/app/", "/app/port-number") == "PORT_NUMBER"


class FakeClient:
    def __init__(self, parameters):
        self.parameters = parameters

    def get_paginator(self, op):
        return self

    def paginate(self, **kw):
        return [{"Parameters": [{"Name": n, "Value": v} for n, v in self.parameters]}]


def test_ssm_path_refuses_two_parameters_with_one_variable():
    with pytest.raises(BadInput, match="DB_URL twice"):
        ssm._get_path(FakeClient([("/app/db-url", "a"), ("/app/db_url", "b")]), "/app/")
    assert ssm._get_path(FakeClient([("/app/db-url", "a")]), "/app/") == {"DB_URL": Secret("a")}


def test_ssm_values_follow_the_env_value_rules():
    with pytest.raises(BadInput, match="NUL"):
        ssm._get_path(FakeClient([("/app/x", "a\x00b")]), "/app/")
    with pytest.raises(BadInput, match="bytes"):
        ssm._get_path(FakeClient([("/app/x", "v" * 40000)]), "/app/")
