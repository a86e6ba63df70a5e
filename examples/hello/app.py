"""ripdep's example app: a tiny web app that answers with data read from its own database.

Run by Debian's /usr/bin/python3 with python3-psycopg. ripdep gives it PORT, HOST, MOUNT_PATH and
DATABASE_URL (peer auth over /run/postgresql: no password anywhere).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
GREETING = os.environ.get("GREETING", "Hello")


def setup() -> None:
    with psycopg.connect(DATABASE_URL) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS visits (id bigserial PRIMARY KEY, path text NOT NULL,"
                     " at timestamptz NOT NULL DEFAULT now())")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            with psycopg.connect(DATABASE_URL) as conn:
                if self.path == "/healthz":
                    conn.execute("SELECT 1")
                    return self.reply(200, {"ok": True})
                conn.execute("INSERT INTO visits (path) VALUES (%s)", (self.path,))
                visits, user, db = conn.execute(
                    "SELECT count(*), current_user, current_database() FROM visits").fetchone()
        except psycopg.Error as e:
            return self.reply(503, {"error": type(e).__name__})
        self.reply(200, {"greeting": f"{GREETING} from {db}", "visits": visits, "db_user": user, "database": db,
                         "mount_path": os.environ.get("MOUNT_PATH", "")})

    def reply(self, status: int, body: dict) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args) -> None:
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


if __name__ == "__main__":
    setup()
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler)
    print(f"hello: listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
    server.serve_forever()
