"""Attacks from the review of the new code (files, releases, fleet, restore): each test performs one.
Pure logic, or the engine on the fake host."""

import os

import pytest

from fakehost import FakeHost
from ripdep import engine
from ripdep.errors import RipdepError
from ripdep.hostconfig import DEFAULT_TEXT
from ripdep.paths import Paths


@pytest.fixture
def world(tmp_path):
    paths = Paths(tmp_path / "root")
    paths.host_config.parent.mkdir(parents=True)
    paths.host_config.write_text(DEFAULT_TEXT.replace("releases_watch = 10", "releases_watch = 0"))
    source = tmp_path / "src"
    (source / "deploy").mkdir(parents=True)
    (source / "app.py").write_text("print('hello')\n")
    host = FakeHost()

    def write(template: str):
        tpl = source / "deploy" / "app.yaml.j2"
        tpl.write_text(template)
        os.chmod(tpl, 0o644)
        path = tmp_path / "ripdep.toml"
        path.write_text(f'source = "{source}"\nstart = ["/usr/bin/python3", "app.py"]\n'
                        '[secrets]\nTOKEN = "generate"\n'
                        '[files]\n"app.yaml" = { template = "deploy/app.yaml.j2", secrets = true }\n')
        return path

    def deploy(manifest, **kw):
        return engine.deploy("shop", manifest, paths=paths, host=host, **kw)
    return paths, host, write, deploy


# --- [files]: a template's error message carries the secret's value ----------------------------

@pytest.mark.parametrize("template", [
    "{{ {}[secret('TOKEN')] }}",  # 'dict object' has no attribute '<value>'
    "{{ secret('TOKEN') | attr(secret('TOKEN')) }}",
    "{{ namespace()[secret('TOKEN')[:20]] }}",  # a part of it: no scrubbing by value can catch that
    "{% if secret('TOKEN') %}{{ {}[secret('TOKEN') | upper] }}{% endif %}",
    "{{ secret(secret('TOKEN')) }}",  # ripdep's own message names the key it was asked for
    "{% if secret('TOKEN') != '********' %}{{ {}[secret('TOKEN')] }}{% endif %}",  # fails with the real value only
])
def test_a_template_error_never_shows_a_secret_value(world, template):
    """A template with secrets = true that fails only with the real value (a lookup keyed by the
    secret) put the value in the error message: stdout, --json, deploy --check, ripdep plan."""
    paths, host, write, deploy = world
    deploy(write("token: {{ secret('TOKEN') }}\n"))
    token = host.store[(paths.secrets("shop"), "TOKEN")].reveal()
    with pytest.raises(RipdepError) as caught:
        deploy(write(template), check=True)
    shown = " ".join([caught.value.message, caught.value.hint or "", *caught.value.details])
    for part in (token, token[:20], token.upper(), token[:20].upper()):
        assert part not in shown
    assert "files.app.yaml" in caught.value.message  # still says which file fails


# --- app names that are the names of ripdep init's own units -----------------------------------

@pytest.mark.parametrize("app", ["fleet", "notify"])
def test_an_app_cannot_be_named_after_ripdep_inits_own_units(app):
    """App "fleet" has the unit ripdep-fleet.service, app "notify" ripdep-notify.service: the names
    of the root units `ripdep init` installs (fleet check, notification delivery)."""
    from ripdep import fleet, names
    from ripdep.errors import BadInput

    assert Paths().unit_name(app) in (fleet.FLEET_UNIT, fleet.NOTIFY_UNIT)
    with pytest.raises(BadInput, match="reserved"):
        names.check_app_name(app)


def test_init_never_overwrites_an_apps_unit_with_its_own_root_unit(tmp_path):
    """An app named fleet deployed before an upgrade: the rerun of `ripdep init` replaced its unit
    file with the root fleet check (no marker check), and the fleet timer then ran it."""
    from ripdep import fleet
    from ripdep.errors import Conflict
    from ripdep.host.fs import FileState
    from ripdep.hostconfig import HostConfig

    paths = Paths(tmp_path)
    app_unit = paths.units / fleet.FLEET_UNIT
    app_text = b"# managed by ripdep: app fleet\n[Service]\nExecStart=/srv/ripdep/fleet/run\n"

    class Host:
        def read_file(self, path):
            return FileState(app_text, 0o644, 0, 0) if path == app_unit else FileState(None)

        def dir_mode(self, path):
            return None

        def is_link(self, path):
            return False

        def active_state(self, name):
            return "inactive"

    with pytest.raises(Conflict, match="not written by ripdep init"):
        fleet.init_step(Host(), paths, HostConfig())
