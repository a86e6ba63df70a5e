"""The container really is a systemd that enforces what units ask for."""


def test_systemd_is_pid1_and_services_run(ct):
    assert ct.run("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert ct.run("systemctl", "is-active", "postgresql", "caddy").stdout.split() == ["active", "active"]


def test_protect_system_strict_is_enforced(ct):
    write = "echo x > /usr/ripdep-probe && echo wrote"
    hardened = ct.run("systemd-run", "--wait", "--pipe", "--quiet", "-p", "ProtectSystem=strict", "/bin/sh", "-c", write)
    assert hardened.returncode != 0 and "Read-only file system" in hardened.stderr
    control = ct.run("systemd-run", "--wait", "--pipe", "--quiet", "/bin/sh", "-c", write)
    assert control.returncode == 0 and control.stdout.strip() == "wrote"
    ct.run("rm", "-f", "/usr/ripdep-probe")
