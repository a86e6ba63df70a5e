#!/usr/bin/python
# Copyright: ripdep maintainers
# MIT License

from __future__ import annotations

DOCUMENTATION = r"""
---
module: info
short_description: Status of ripdep apps, as facts
version_added: "0.1.0"
description:
  - Runs C(ripdep status --json) on the target and returns one row per app - desired and actual state,
    health through Caddy, URL, port, memory, restarts, database size, unit exposure, last deploy and
    newest verified backup (see ripdep's docs/json.md, "status rows"); keys ripdep adds later (such as
    the release an app runs) come along as they are.
  - Sets the facts C(ripdep_apps) (a mapping of app name to its row) and C(ripdep_degraded).
  - Changes nothing; runs in check mode too.
options:
  name:
    description: Only these apps (default - every app ripdep manages on the target).
    type: list
    elements: str
    default: []
    aliases: [apps]
extends_documentation_fragment:
  - ripdep.ripdep.ripdep
notes:
  - Needs root on the target (C(become=true)); C(ripdep status) needs no TTY, so C(sudo -n) works.
author:
  - ripdep maintainers
"""

EXAMPLES = r"""
- name: Every app's status
  ripdep.ripdep.info:
  register: status

- name: Fail when an app is degraded
  ansible.builtin.assert:
    that: not ripdep_degraded
    fail_msg: "degraded: {{ ripdep_apps | dict2items | selectattr('value.degraded') | map(attribute='key') | join(', ') }}"

# ad hoc, every host:  ansible all -b -m ripdep.ripdep.info
"""

RETURN = r"""
apps:
  description: One row per app, as C(ripdep status --json) reports it.
  returned: always
  type: list
  elements: dict
  sample: [{"app": "hello", "desired": "running", "active_state": "active", "health": "ok",
            "url": "http://127.0.0.1/hello/", "port": 20000, "exposure": 0.9, "backup_state": "ok",
            "backup_last": "20261126T213827Z", "degraded": false}]
degraded:
  description: Any app is degraded (failed unit, not running though it should, failing health check, failed or stale backup).
  returned: always
  type: bool
ansible_facts:
  description: C(ripdep_apps) (app name to row) and C(ripdep_degraded).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ripdep.ripdep.plugins.module_utils.ripdep import fail, run


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="list", elements="str", default=[], aliases=["apps"]),
            executable=dict(type="str", default="ripdep"),
        ),
        supports_check_mode=True,
    )
    doc = run(module, "status", *module.params["name"])
    if doc.get("exit_code"):
        fail(module, doc)
    rows = doc["data"]["apps"]
    degraded = bool(doc["data"]["degraded"])
    module.exit_json(changed=False, apps=rows, degraded=degraded, msg=doc.get("msg"),
                     ansible_facts={"ripdep_apps": {r["app"]: r for r in rows}, "ripdep_degraded": degraded})


if __name__ == "__main__":
    main()
