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
