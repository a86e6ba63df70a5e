"""The health check: an HTTP request through Caddy on loopback, retried until a deadline.

A plain socket and an HTTP/1.0 request, not http.client: this runs on every deploy and status,
and http.client's import (email parsing and all) alone costs ~18 ms.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


FIRST_DELAY = 0.02


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


def get(target: int | str, path: str, host_header: str | None, timeout: float, method: str = "GET",
        headers: tuple[tuple[str, str], ...] = (), body: str | None = None) -> tuple[int, bytes]:
    """`method` path on 127.0.0.1:target (a port) or a unix socket (a path); returns (status, body).
    Raises OSError or ValueError. Header names and values are checked in spec.py (no CR or LF)."""
    payload = (body or "").encode()
    lines = [f"{method} {path} HTTP/1.0", f"Host: {host_header or '127.0.0.1'}", "User-Agent: ripdep-health",
             "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
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
    head, _, answer = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[:60]!r}")
    return int(status_line[1]), answer


def judge(check, status: int, body: bytes) -> tuple[bool, str, bool]:
    """(healthy, why not, worth retrying) for an answer. A 4xx other than the expected status is the
    health check asking the wrong thing (a GET where only POST is served, a wrong path), not an app
    still starting: no retry. A 5xx (Caddy's 502 while the app starts) or a missing text retries."""
    if not check.healthy(status):
        want = f"HTTP {check.status}" if check.status else "a 2xx or 3xx answer"
        return False, f"HTTP {status}, expected {want}", not 400 <= status < 500
    if check.contains and check.contains.encode() not in body:
        return False, f"HTTP {status} without {check.contains!r} in the answer", True
    return True, "", False


def probe(url: str, port: int | str, path: str, host_header: str | None, deadline_s: float,
          gave_up=lambda: None, check=None) -> Probe:
    """Ask until a healthy answer or the deadline; `check` (spec.Health) gives the method, body,
    headers and what is healthy (default: GET, any 2xx or 3xx). `gave_up()` returning a reason
    (e.g. "the unit failed") ends the wait early; so does an answer not worth retrying (a 4xx)."""
    if check is None:
        from ripdep.spec import Health

        check = Health(path)
    result = Probe(url)
    start = time.monotonic()
    delay = FIRST_DELAY
    while True:
        result.attempts += 1
        t0 = time.monotonic()
        retry = True
        try:
            status, body = get(port, path, host_header, max(0.5, min(5.0, deadline_s)), check.method,
                               check.headers, check.body)
            result.status, result.body = status, body
            result.ok, result.error, retry = judge(check, status, body)
        except (OSError, ValueError) as e:
            result.status, result.error, result.ok = None, f"{type(e).__name__}: {e}", False
        result.latency_ms = (time.monotonic() - t0) * 1000
        result.seconds = time.monotonic() - start
        if result.ok or not retry or result.seconds + delay > deadline_s:
            return result
        reason = gave_up()
        if reason:
            result.error = f"{result.error or f'HTTP {result.status}'}; {reason}"
            return result
        time.sleep(delay)
        # every 20 ms while a freshly started app comes up (most answer within a second), then
        # backing off: the wait ends at most 20 ms after the app first answers
        delay = FIRST_DELAY if result.seconds < 1.0 else min(delay * 1.5, 0.5)
