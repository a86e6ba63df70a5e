"""The health check: an HTTP GET through Caddy on loopback, retried until a deadline."""

from __future__ import annotations

import http.client
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


def get(port: int, path: str, host_header: str | None, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host_header or "127.0.0.1", "User-Agent": "ripdep-health"})
        resp = conn.getresponse()
        return resp.status, resp.read(65536)
    finally:
        conn.close()


def probe(url: str, port: int, path: str, host_header: str | None, deadline_s: float,
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
        except (OSError, http.client.HTTPException) as e:
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
