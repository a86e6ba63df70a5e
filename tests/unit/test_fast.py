"""`ripdep list` before click (ripdep/fast.py) says exactly what the CLI says."""

import json

import pytest
from click.testing import CliRunner

from ripdep import fast, names, report
from ripdep.cli import main


@pytest.fixture
def manifests(tmp_path, monkeypatch):
    for name in ("shop-b", "shop-a", "Bad", ".hidden", "x"):
        (tmp_path / f"{name}.toml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    monkeypatch.setattr(fast, "MANIFESTS", str(tmp_path))
    monkeypatch.setattr(fast.installed_apps, "__defaults__", (str(tmp_path),))
    monkeypatch.setattr("ripdep.ops.installed_apps", lambda paths=None: fast.installed_apps(str(tmp_path)))
    return tmp_path


@pytest.mark.parametrize("argv", [["list"], ["list", "--json"]])
def test_fast_list_prints_what_the_cli_prints(manifests, capsys, argv):
    assert fast.fast(argv) == 0
    quick = capsys.readouterr().out
    slow = CliRunner().invoke(main, argv).output
    assert quick == slow
    if "--json" in argv:
        assert json.loads(quick)["data"]["apps"] == ["shop-a", "shop-b", "x"]


def test_fast_agrees_with_the_modules_it_spells_out(tmp_path):
    assert fast.VERSION == report.VERSION
    for name in ("a", "shop-a", "a" * 31, "a" * 32, "Shop", "1a", "a_b", "a.b"):
        listed = name in fast.installed_apps(str(_folder(tmp_path, name)))
        assert listed == bool(names.APP_NAME.fullmatch(name)), name
    assert fast.list_document(["a"]) == report.envelope("list", msg="1 app(s)", data={"apps": ["a"]})


def _folder(root, name):
    folder = root / name.replace("/", "_")
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text("")
    return folder


def test_everything_else_and_any_surprise_goes_to_the_cli(tmp_path, monkeypatch):
    assert fast.fast(["status"]) is None and fast.fast(["list", "--debug"]) is None
    monkeypatch.setattr(fast, "installed_apps", lambda: (_ for _ in ()).throw(PermissionError("no")))
    assert fast.fast(["list"]) is None
