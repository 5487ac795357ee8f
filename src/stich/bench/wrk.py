"""Drive one HTTP phase with ``wrk`` (Debian package ``wrk``), a C load generator.

wrk costs a fraction of the CPU a Python client needs per request, so on a small machine
shared by client and server far more of it goes to the server being measured. The phase's
requests (method, path, bearer token, body) are written to a file that a Lua script
cycles through, each connection from its own offset; the script prints one JSON line of
totals and latency percentiles when wrk is done.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stich.bench.http import HttpRequest

INSTALL_HINT = (
    "install wrk for a load generator that leaves the CPU to the server: apt-get install wrk"
)

_SCRIPT = r"""
local requests = {}
local counter = 0
local count = 0

function setup(thread)
  count = count + 1
  thread:set("thread_id", count)
end

function init(args)
  for line in io.lines(args[1]) do
    local method, path, token, body = line:match("^(%S+)\t(%S+)\t(%S*)\t(.*)$")
    local headers = {["User-Agent"] = "stich-bench-wrk"}
    if token ~= "" then headers["Authorization"] = "Bearer " .. token end
    if body == "" then body = nil else headers["Content-Type"] = "application/json" end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  counter = (thread_id or 0) * 7919
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '\nSTICH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    base_url: str, requests: list[HttpRequest], *, connections: int, seconds: float
) -> dict[str, float]:
    """Requests, errors (socket errors, timeouts and non-2xx/3xx answers), seconds, p50
    and p99 in milliseconds."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="stich-wrk-") as directory:
        script = Path(directory) / "requests.lua"
        script.write_text(_SCRIPT)
        listing = Path(directory) / "requests.tsv"
        listing.write_text("".join(_line(r) for r in requests))
        command = [
            binary,
            "--threads",
            "1",  # one client thread: the rest of the machine is the server's
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--script",
            str(script),
            base_url,
            "--",
            str(listing),
        ]
        run = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    line = next((x for x in run.stdout.splitlines() if x.startswith("STICH ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stderr or run.stdout}")
    totals = json.loads(line.removeprefix("STICH "))
    errors = sum(totals[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": float(totals["requests"]),
        "errors": float(errors),
        "seconds": totals["duration_us"] / 1e6,
        "p50_ms": totals["p50_us"] / 1000,
        "p99_ms": totals["p99_us"] / 1000,
    }


def _line(request: HttpRequest) -> str:
    body = json.dumps(request.body, separators=(",", ":")) if request.body is not None else ""
    return f"{request.method}\t{request.path}\t{request.token or ''}\t{body}\n"
