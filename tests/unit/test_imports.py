"""Heavy modules are imported only where they are used (speed is part of the interface)."""

import subprocess
import sys


def test_cli_and_deploy_modules_do_not_import_heavy_libraries():
    code = ("import sys, ripdep.cli, ripdep.engine, ripdep.ops, ripdep.status, ripdep.appconfig, ripdep.hostinit;"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'psycopg', 'jinja2', 'tomlkit'));"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
