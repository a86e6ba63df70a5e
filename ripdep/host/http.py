"""The health check: an HTTP GET through Caddy on loopback, retried until a deadline.

A plain socket and an HTTP/1.0 request, not http.client: this runs on every deploy and status,
and http.client's import (email parsing and all) alone costs ~18 ms.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Probe:
    url: str
    ok: bool = False
    status: int | None = None
    error: str = ""
    attempts: int = 0
    seconds: float = 0.0  # total time spent waiting
    latency_ms: float = 0.0  # of the last attempt
    body: bytes = field(default=b"", repr=False)

    def as_dict(self) -> dict:
        return {"url": self.url, "ok": self.ok, "status": self.status, "error": self.error,
                "attempts": self.attempts, "seconds": round(self.seconds, 3), "latency_ms": round(self.latency_ms, 1)}


def connect(target: int | str, timeout: float) -> socket.socket:
    """127.0.0.1:target for a port, or the unix socket at target for a path (an app's proxy socket)."""
    if isinstance(target, int):
        return socket.create_connection(("127.0.0.1", target), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


def get(target: int | str, path: str, host_header: str | None, timeout: float) -> tuple[int, bytes]:
    """GET path from 127.0.0.1:target (a port) or a unix socket (a path); returns (status, body).
    Raises OSError or ValueError."""
    request = (f"GET {path} HTTP/1.0\r\nHost: {host_header or '127.0.0.1'}\r\n"
               f"User-Agent: ripdep-health\r\nConnection: close\r\n\r\n").encode()
    deadline = time.monotonic() + timeout  # for the whole answer: an app trickling bytes stalls nothing
    with connect(target, timeout) as sock:
        sock.sendall(request)
        chunks: list[bytes] = []
        while sum(map(len, chunks)) < 65536:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete answer within {timeout:.1f}s")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[:60]!r}")
    return int(status_line[1]), body


def probe(url: str, port: int | str, path: str, host_header: str | None, deadline_s: float,
          gave_up=lambda: None) -> Probe:
    """GET until a 2xx/3xx answer or the deadline; 5xx (Caddy's 502 while the app starts) retries.
    `gave_up()` returning a reason (e.g. "the unit failed") ends the wait early."""
    result = Probe(url)
    start = time.monotonic()
    delay = 0.05
    while True:
        result.attempts += 1
        t0 = time.monotonic()
        try:
            status, body = get(port, path, host_header, timeout=max(0.5, min(5.0, deadline_s)))
            result.status, result.body, result.error = status, body, ""
            result.ok = 200 <= status < 400
        except (OSError, ValueError) as e:
            result.status, result.error, result.ok = None, f"{type(e).__name__}: {e}", False
        result.latency_ms = (time.monotonic() - t0) * 1000
        result.seconds = time.monotonic() - start
        if result.ok or result.seconds + delay > deadline_s:
            return result
        reason = gave_up()
        if reason:
            result.error = f"{result.error or f'HTTP {result.status}'}; {reason}"
            return result
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
