#!/usr/bin/python
# Copyright: ripdep maintainers
# MIT License

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup
short_description: Take, list or restore verified backups of a ripdep app
version_added: "0.1.0"
description:
  - O(command=take) runs C(ripdep backup APP) - a backup verified at once by a rehearsal of its restore
    (checksums, the dump restored by the app's own role into a scratch database, the state dir unpacked
    as the app's user). An unverified backup fails the task.
  - O(command=list) runs C(ripdep backup list APP); it changes nothing.
  - O(command=restore) runs C(ripdep restore APP BACKUP --yes). When the app is not on the target (moved
    from another host, or destroyed here), ripdep creates it from the backup alone - its manifest
    (validated as C(ripdep deploy --manifest) validates one), secrets, database with its locale and state
    dir - and only then starts it. A backup given by path must be owned by root and writable by no one
    else; its checksums are verified before anything changes.
options:
  app:
    description: The app's name.
    type: str
    required: true
    aliases: [name]
  command:
    description: What to do.
    type: str
    choices: [take, list, restore]
    default: take
  backup:
    description: With O(command=restore), the backup - a folder name from C(list), or a path on the target.
    type: str
  if_older_than:
    description:
      - With O(command=take), take one only if the newest verified backup is older than this many seconds;
        otherwise report it with C(changed=false). Keeps a play that takes backups idempotent.
    type: int
extends_documentation_fragment:
  - ripdep.ripdep.ripdep
notes:
  - Needs root on the target (C(become=true)).
  - In check mode O(command=take) and O(command=restore) change nothing and report C(changed=true)
    (ripdep cannot rehearse them without doing the work); O(command=list) runs as usual.
author:
  - ripdep maintainers
"""

EXAMPLES = r"""
- name: A verified backup, unless one is younger than an hour
  ripdep.ripdep.backup:
    app: shop-a
    if_older_than: 3600
  register: b

- name: Every backup, local and remote
  ripdep.ripdep.backup:
    app: shop-a
    command: list
  register: listed

- name: Restore one (creates the app if it is not on this host)
  ripdep.ripdep.backup:
    app: shop-a
    command: restore
    backup: /var/lib/ripdep-incoming/shop-a/20261130T101500Z
"""

RETURN = r"""
backup:
  description: The backup taken (or the fresh one kept, with O(if_older_than)).
  returned: command=take
  type: dict
  contains:
    name:
      description: Folder name (its UTC time).
      type: str
    path:
      description: Folder on the target.
      type: str
    verified:
      description: Verification passed.
      type: bool
    files:
      description: Every file of the backup, relative to its folder (what to copy to move it elsewhere).
      type: list
      elements: str
backups:
  description: ripdep's backup list rows (name, path, size_bytes, verified, local, remote...).
  returned: command=list
  type: list
  elements: dict
removed:
  description: Backups pruned by retention after this one was taken.
  returned: command=take
  type: list
  elements: str
health:
  description: The restored app's health check through Caddy.
  returned: command=restore
  type: dict
actions:
  description: What ripdep did.
  returned: always
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ripdep.ripdep.plugins.module_utils.ripdep import did_change, fail, run

SUMS = "SHA256SUMS"


def files_of(path: str) -> list[str]:
    """The backup's files, from its checksum list (docs/backups.md): what a copy must carry."""
    try:
        with open(os.path.join(path, SUMS)) as f:
            listed = [line.rstrip("\n").split("  ", 1)[1] for line in f if "  " in line]
    except OSError:
        return []
    return sorted(listed) + [SUMS]


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            app=dict(type="str", required=True, aliases=["name"]),
            command=dict(type="str", default="take", choices=["take", "list", "restore"]),
            backup=dict(type="str"),
            if_older_than=dict(type="int"),
            executable=dict(type="str", default="ripdep"),
        ),
        required_if=[("command", "restore", ("backup",))],
        supports_check_mode=True,
    )
    app, command = module.params["app"], module.params["command"]

    def checked(*args: str) -> dict:
        doc = run(module, *args)
        if doc.get("exit_code"):
            fail(module, doc)
        return doc

    if command == "list" or (command == "take" and module.params["if_older_than"] is not None):
        rows = checked("backup", "list", app)["data"]["backups"]
        if command == "list":
            module.exit_json(changed=False, backups=rows, actions=[], msg=f"{len(rows)} backup(s)")
        fresh = [r for r in rows if r.get("local") and r.get("verified")
                 and r.get("age_seconds") is not None and r["age_seconds"] < module.params["if_older_than"]]
        if fresh:
            kept = dict(fresh[-1], files=files_of(fresh[-1]["path"]))
            module.exit_json(changed=False, backup=kept, removed=[], actions=[],
                             msg=f"backup {kept['name']} is {kept['age_seconds']} s old")
    if module.check_mode:
        what = "take a backup" if command == "take" else f"restore {module.params['backup']}"
        module.exit_json(changed=True, actions=[], msg=f"would {what} of {app} (check mode: nothing ran)")
    if command == "take":
        doc = checked("backup", app)
        taken = doc["data"]["backup"]
        module.exit_json(changed=did_change(doc), backup=dict(taken, files=files_of(taken["path"])),
                         removed=doc["data"].get("removed", []), actions=doc.get("actions", []), msg=doc.get("msg"))
    doc = checked("restore", app, module.params["backup"], "--yes")
    module.exit_json(changed=did_change(doc), health=doc.get("health"), url=doc.get("url"), port=doc.get("port"),
                     actions=doc.get("actions", []), msg=doc.get("msg"))


if __name__ == "__main__":
    main()
