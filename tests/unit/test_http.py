"""The health probe's HTTP client against a local server that misbehaves."""

import socket
import threading
import time

import pytest

from ripdep.host import http
from ripdep.report import printable


def serve_once(handler):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def run():
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            handler(conn)
        server.close()
    threading.Thread(target=run, daemon=True).start()
    return server.getsockname()[1]


def test_an_answer_trickled_byte_by_byte_is_cut_off_at_the_timeout():
    def trickle(conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\n")
        try:
            for _ in range(40):
                conn.sendall(b"x")
                time.sleep(0.1)
        except OSError:
            pass
    port = serve_once(trickle)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        http.get(port, "/", None, timeout=0.5)
    assert time.monotonic() - t0 < 1.5  # the whole answer, not each read, has the deadline


def test_a_quick_answer_is_read():
    port = serve_once(lambda conn: conn.sendall(b"HTTP/1.0 204 No Content\r\n\r\n"))
    assert http.get(port, "/", None, timeout=2)[0] == 204


def test_control_characters_reach_a_terminal_escaped():
    hostile = "boom\x1b[2J\x1b]52;c;ZXZpbA==\x07\nbeta: has SUPERUSER"
    shown = printable(hostile)
    assert "\x1b" not in shown and "\n" not in shown and "\x07" not in shown
    assert shown.startswith("boom\\x1b[2J") and "é ✓" == printable("é ✓")
