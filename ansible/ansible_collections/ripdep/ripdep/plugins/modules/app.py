#!/usr/bin/python
# Copyright: ripdep maintainers
# MIT License

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app
short_description: A ripdep app present, started, stopped or absent
version_added: "0.1.0"
description:
  - Deploys an app with C(ripdep deploy) (its own Unix user, PostgreSQL role and database, hardened
    systemd unit, Caddy route and secrets), starts or stops it with C(ripdep start) / C(ripdep stop),
    or removes it with C(ripdep destroy).
  - Runs the ripdep CLI with C(--json) and reads its one versioned document; C(changed) is ripdep's
    own verdict, so a second run with the same manifest reports C(changed=false).
  - Check mode runs ripdep with C(--check) (nothing changes); diff mode runs it with C(--diff) and
    returns the diffs of manifest, env file (secret values masked as C(********) by ripdep), unit and
    route as before/after pairs.
  - A failure returns ripdep's error message, its hint and its exit code (see ripdep's docs/exit-codes.md).
options:
  name:
    description: The app's name (lower-case letters, digits and C(-), as ripdep accepts it).
    type: str
    required: true
  state:
    description:
      - C(present) deploys the app; an app that was stopped stays stopped (ripdep keeps the desired state).
      - C(started) deploys it and makes sure it runs (enabled, started, health-checked through Caddy).
      - C(stopped) deploys it and makes sure it is stopped and disabled, across reboots and later deploys.
        An app that does not exist yet is deployed (and so started once) and then stopped.
      - C(absent) runs C(ripdep destroy). ripdep refuses it unless a verified backup younger than
        C(destroy_backup_max_age) exists; set O(backup=true) to take one first. The backups are kept.
    type: str
    choices: [present, started, stopped, absent]
    default: present
  manifest:
    description:
      - The manifest as a mapping (keys of ripdep's docs/manifest.md). It is written as TOML to a private
        temporary file on the target and installed with C(ripdep deploy --manifest), which validates it.
      - C(source) must be an absolute path on the target.
      - Omit both O(manifest) and O(manifest_file) to converge the app with the manifest installed on the target.
    type: dict
  manifest_file:
    description: Path on the target of a manifest file (TOML) to install with C(ripdep deploy --manifest).
    type: path
  backup:
    description: With O(state=absent), take and verify a backup first (C(ripdep destroy --backup)).
    type: bool
    default: false
extends_documentation_fragment:
  - ripdep.ripdep.ripdep
notes:
  - Needs root on the target (C(become=true)).
  - Supports check mode and diff mode.
  - With O(state=started) or O(state=stopped), check mode can only plan the deploy of an app that does
    not exist yet; its start or stop is planned once it exists.
author:
  - ripdep maintainers
"""

EXAMPLES = r"""
- name: Shop A, from an inline manifest
  ripdep.ripdep.app:
    name: shop-a
    state: started
    manifest:
      source: /srv/src/shop
      start: ["/usr/bin/python3", "app.py"]
      health: /healthz
      env:
        GREETING: Hello
      secrets:
        SECRET_KEY: generate
      limits:
        memory: 128M

- name: An app whose manifest is a file on the host
  ripdep.ripdep.app:
    name: hello
    manifest_file: /srv/src/hello/ripdep.toml

- name: Keep it stopped (across reboots and deploys)
  ripdep.ripdep.app:
    name: shop-a
    state: stopped

- name: Remove it, behind a backup taken first
  ripdep.ripdep.app:
    name: shop-a
    state: absent
    backup: true
"""

RETURN = r"""
url:
  description: Absolute URL through Caddy that answers on the target itself.
  returned: when the app exists
  type: str
  sample: http://127.0.0.1/shop-a/
port:
  description: The app's loopback port.
  returned: when the app exists
  type: int
  sample: 20000
health:
  description: ripdep's health check through Caddy (C(ok), C(status), C(latency_ms)...), or null.
  returned: always
  type: dict
actions:
  description: Every change made (or, in check mode, that would be made), in order, from every ripdep run.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "env:shop-a", "action": "update", "detail": "update /etc/ripdep/env/shop-a.env"}]
commands:
  description: The ripdep commands run, e.g. C(deploy), C(start).
  returned: always
  type: list
  elements: str
rc:
  description: ripdep's exit code (docs/exit-codes.md).
  returned: failure
  type: int
  sample: 3
error_code:
  description: ripdep's error code name (C(precondition), C(bad_input), C(health_check_failed)...).
  returned: failure
  type: str
hint:
  description: ripdep's hint on what to do.
  returned: failure
  type: str
ripdep:
  description: ripdep's whole JSON document of the failed command.
  returned: failure
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ripdep.ripdep.plugins.module_utils.ripdep import (TomlError, ansible_diffs, did_change, fail,
                                                                           run, to_toml)


def write_manifest(module) -> str | None:
    manifest = module.params["manifest"]
    if manifest is None:
        return module.params["manifest_file"]
    source = manifest.get("source")
    if not isinstance(source, str) or not source.startswith("/"):
        module.fail_json(msg="manifest.source must be an absolute path on the target: an inline manifest has no "
                             "folder of its own that a relative path could start from")
    try:
        text = to_toml(manifest)
    except TomlError as e:
        module.fail_json(msg=str(e))
    path = os.path.join(module.tmpdir, "ripdep-manifest.toml")  # Ansible's private remote tmp, removed after
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "started", "stopped", "absent"]),
            manifest=dict(type="dict"),
            manifest_file=dict(type="path"),
            backup=dict(type="bool", default=False),
            executable=dict(type="str", default="ripdep"),
        ),
        mutually_exclusive=[("manifest", "manifest_file")],
        supports_check_mode=True,
    )
    name, state = module.params["name"], module.params["state"]
    flags = (["--check"] if module.check_mode else []) + (["--diff"] if module._diff else [])
    docs: list[dict] = []

    def step(*args: str) -> dict:
        doc = run(module, *args)
        docs.append(doc)
        if doc.get("exit_code"):
            fail(module, doc, changed=any(did_change(d) for d in docs[:-1]),
                 commands=[d.get("command") for d in docs])
        return doc

    listed = run(module, "list")
    if listed.get("exit_code"):
        fail(module, listed)
    exists = name in (listed.get("data") or {}).get("apps", [])
    warnings = []
    if state == "absent":
        if exists:
            doc = step("destroy", name, "--yes", *(["--backup"] if module.params["backup"] else []), *flags)
            warnings += [s["note"] for s in doc.get("steps", []) if "would be refused" in (s.get("note") or "")]
    else:
        manifest_path = write_manifest(module)
        deploy = ["deploy", name, *(["--manifest", manifest_path] if manifest_path else []), *flags]
        if state == "stopped" and exists:
            step("stop", name, *flags)  # first: the deploy then keeps it stopped, never restarts it
        step(*deploy)
        if state == "started" and exists:
            step("start", name, *flags)  # a deploy keeps a stopped app stopped
        if state == "stopped" and not exists and not module.check_mode:
            step("stop", name, *flags)
    for warning in warnings:
        module.warn(warning)
    last = docs[-1] if docs else {}
    result = dict(
        changed=any(did_change(d) for d in docs),
        msg=last.get("msg") or f"app {name} is not on this host",
        url=last.get("url"),
        port=last.get("port"),
        health=next((d.get("health") for d in reversed(docs) if d.get("health")), None),
        actions=[a for d in docs for a in d.get("actions", [])],
        commands=[d.get("command") for d in docs],
    )
    if module._diff:
        result["diff"] = ansible_diffs([text for d in docs for text in d.get("diff", [])])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
