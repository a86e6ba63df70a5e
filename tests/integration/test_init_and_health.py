"""init's idempotency and preconditions; health-check failures; host routes."""

import json

from conftest import App, manifest


def test_init_is_idempotent(ct):
    before = ct.sh("md5sum /etc/caddy/Caddyfile /etc/postgresql/15/main/pg_hba.conf /etc/ripdep/ripdep.toml",
                   check=True).stdout
    caddy_pid = ct.show("caddy.service", "MainPID")
    proc = ct.ripdep("init", "--json")
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["changed"] is False and doc["actions"] == []
    assert ct.sh("md5sum /etc/caddy/Caddyfile /etc/postgresql/15/main/pg_hba.conf /etc/ripdep/ripdep.toml",
                 check=True).stdout == before
    assert ct.show("caddy.service", "MainPID") == caddy_pid  # not restarted


def test_init_check_shows_a_drifted_pg_hba_and_changes_nothing_then_init_repairs_it(ct):
    hba = "/etc/postgresql/15/main/pg_hba.conf"
    original = ct.run("cat", hba, check=True).stdout
    ct.write(hba, original.replace("local   ripdep_scratch", "#local  ripdep_scratch"), mode="0640")
    ct.run("chown", "postgres:postgres", hba, check=True)
    try:
        drifted = ct.run("md5sum", hba, check=True).stdout
        proc = ct.ripdep("init", "--check", "--diff", "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == 0 and doc["check"] and [a["id"] for a in doc["actions"]] == ["pg_hba:ripdep"], doc
        assert "+local   ripdep_scratch" in "".join(doc["diff"])
        assert ct.run("md5sum", hba, check=True).stdout == drifted  # --check changed nothing
        assert ct.ripdep("init").returncode == 0
        assert ct.run("cat", hba, check=True).stdout == original
    finally:
        ct.write(hba, original, mode="0640")
        ct.run("chown", "postgres:postgres", hba, check=True)


def test_init_names_a_missing_service(ct):
    ct.run("systemctl", "stop", "caddy.service", check=True)
    try:
        proc = ct.ripdep("init")
        assert proc.returncode == 3
        assert "caddy.service is inactive" in proc.stderr and "systemctl enable --now caddy.service" in proc.stderr
    finally:
        ct.run("systemctl", "start", "caddy.service", check=True)


def test_failing_health_check_reports_check_timings_and_journal(ct):
    app = App(ct, "crashy")
    start = '["/usr/bin/python3", "-c", "import sys; print(\\"crashy: boom at start\\", flush=True); sys.exit(3)"]'
    code, doc = app.deploy(manifest(start=start))
    assert code == 4, doc
    err = doc["errors"][0]
    assert err["code"] == "health_check_failed"
    details = "\n".join(err["details"])
    assert "check: GET http://127.0.0.1/crashy/healthz through Caddy" in details
    assert "attempt(s) over" in details
    assert "crashy: boom at start" in details
    # the deploy was applied: the document says what it changed, where the app is, and the probe
    assert doc["changed"] and "unit:ripdep-crashy.service" in [a["id"] for a in doc["actions"]]
    assert doc["url"] == "http://127.0.0.1/crashy/" and doc["port"] and doc["health"]["ok"] is False
    # the app crash-loops, so the wait ended well before the 30 s deadline, saying why
    assert "crashed and was restarted" in details and "cause: the app exits soon after it starts" in details
    assert "seen: " in details and "status=3" in details


def test_host_route_answers_for_its_host_only(probe_factory, ct):
    probe_factory("hosted", manifest(raw='[route]\nhost = "hosted.example.com"\n'))
    ok = ct.curl("http://127.0.0.1/healthz", "-H", "Host: hosted.example.com")
    assert json.loads(ok.stdout) == {"ok": True}
    other = ct.curl("http://127.0.0.1/healthz", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: other.example.com")
    assert other.stdout == "404"  # the catch-all :80 site's file server, not the app
    snippet = ct.run("cat", "/etc/caddy/ripdep/hosts/hosted.caddy", check=True).stdout
    assert "http://hosted.example.com {" in snippet
    assert ct.run("test", "-e", "/etc/caddy/ripdep/paths/hosted.caddy").returncode != 0


def test_switching_route_kind_moves_the_snippet(probe_factory, ct):
    app = probe_factory("mover")
    assert ct.get_json(f"{app.url}healthz") == {"ok": True}
    code, doc = app.deploy(manifest(raw='[route]\nhost = "mover.example.com"\n'))
    assert code == 0, doc
    assert {"remove", "create"} <= {a["action"] for a in doc["actions"] if a["id"] == "route:mover"}
    assert ct.run("test", "-e", "/etc/caddy/ripdep/paths/mover.caddy").returncode != 0
    assert json.loads(ct.curl("http://127.0.0.1/healthz", "-H", "Host: mover.example.com").stdout) == {"ok": True}
