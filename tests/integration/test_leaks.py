"""No secret value leaks: not on stdout/stderr, in JSON or diffs, in the journal, in the arguments
of any process ripdep runs (an execve audit with strace -f), or in any file readable beyond root."""

import pytest

from conftest import AWS, ROOT, App, manifest, ssm, start_moto

SSM_VALUE = "ssm-secret-Zq9 with spaces $and 'quotes'"
STORED_VALUE = "stored-secret-Kx7 \"and\" %percent"
MANIFEST = manifest(raw='secrets_from = ["ssm:/leak/"]\n[secrets]\nGEN = "generate"\n')


@pytest.fixture(scope="module")
def leaky(ct):
    start_moto(ct)
    ssm(ct, "put", {"/leak/api-token": SSM_VALUE})
    app = App(ct, "leaky")
    code, doc = app.deploy(MANIFEST, env=AWS)
    assert code == 0, doc
    assert ct.run("ripdep", "secret", "set", "leaky", "STORED", input=STORED_VALUE, env=AWS).returncode == 0
    cred = App(ct, "leaky-cred")
    code, doc = cred.deploy(manifest(raw='delivery = "credentials"\n[secrets]\nTOKEN = "generate"\n'))
    assert code == 0, doc
    values = [SSM_VALUE, STORED_VALUE]
    for path in ("/etc/ripdep/secrets/leaky/GEN", "/etc/ripdep/secrets/leaky-cred/TOKEN"):
        values.append(ct.run("cat", path, check=True).stdout)
    assert app.op("env", name="API_TOKEN")["result"] == SSM_VALUE  # the secrets are really in use
    assert app.op("env", name="STORED")["result"] == STORED_VALUE
    return app, values


COMMANDS = [
    ["deploy", "leaky"], ["deploy", "leaky", "--json"], ["deploy", "leaky", "--diff"],
    ["deploy", "leaky", "--check", "--diff", "--json"], ["deploy", "leaky-cred", "--diff", "--json"],
    ["status"], ["status", "--json"], ["list", "--json"], ["config", "get", "leaky"],
    ["config", "set", "leaky", "COLOUR=red", "--json"], ["secret", "list", "leaky"], ["secret", "list", "leaky", "--json"],
    ["secret", "rotate", "leaky", "GEN", "--json"], ["restart", "leaky"], ["stop", "leaky", "--json"],
    ["start", "leaky"], ["logs", "leaky", "-n", "500"], ["secret", "rotate", "leaky-cred", "TOKEN"],
    ["deploy", "leaky", "--debug", "--manifest", "/nonexistent.toml"],
]


def test_no_secret_in_output_arguments_journal_or_files(leaky, ct):
    app, values = leaky
    outputs = []
    for i, argv in enumerate(COMMANDS):
        proc = ct.run("strace", "--seccomp-bpf", "-f", "-qq", "-s", "65536", "-e", "trace=execve", "-o", f"/root/trace.{i}",
                      "ripdep", *argv, env=AWS)
        assert proc.returncode in (0, 2), (argv, proc.stderr)
        outputs.append((argv, proc.stdout + proc.stderr))
    # secret set with the value on stdin, and an error path that has the value in hand
    proc = ct.run("strace", "--seccomp-bpf", "-f", "-qq", "-s", "65536", "-e", "trace=execve", "-o", "/root/trace.set",
                  "ripdep", "secret", "set", "leaky", "STORED", input=STORED_VALUE, env=AWS)
    outputs.append((["secret", "set"], proc.stdout + proc.stderr))
    proc = ct.run("ripdep", "secret", "set", "leaky", "BAD-NAME", input=STORED_VALUE, env=AWS)
    assert proc.returncode == 2
    outputs.append((["secret", "set", "BAD-NAME"], proc.stdout + proc.stderr))
    # the rotated values are secrets too
    values += [ct.run("cat", p, check=True).stdout for p in ("/etc/ripdep/secrets/leaky/GEN",
                                                                 "/etc/ripdep/secrets/leaky-cred/TOKEN")]
    traces = ct.sh("cat /root/trace.*", check=True).stdout
    assert "execve(" in traces and "systemctl" in traces  # the audit really saw ripdep's children
    journal = ct.run("journalctl", "--no-pager", "-o", "verbose").stdout
    for value in values:
        for argv, out in outputs:
            assert value not in out, f"secret in output of ripdep {' '.join(argv)}"
        assert value not in traces, "secret in a process argument"
        assert value not in journal, "secret in the journal"
    unit = ct.run("systemctl", "show", "ripdep-leaky.service", check=True).stdout
    assert not any(v in unit for v in values)
    scan = ct.run("/usr/bin/python3", str(ROOT / "tests/fixtures/leakscan.py"), "--apps", "leaky,leaky-cred",
                  "--exclude", str(ROOT),
                  "/etc", "/var/lib/ripdep",
                  "/srv/ripdep", "/var/cache/ripdep", "/run/ripdep", "/root", "/tmp", "/var/tmp", "/var/log",
                  check=True).stdout
    import json

    result = json.loads(scan)
    assert result["secrets"] >= 4 and result["findings"] == []
