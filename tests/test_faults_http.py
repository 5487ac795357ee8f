"""An unexpected error answers the JSON 500 and keeps the keep-alive connection open
(issue 13, item 8), checked through a real uvicorn server on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import Request
from structlog.testing import capture_logs

from stich.api.app import create_app
from stich.api.context import REQUEST_ID_HEADER
from stich.config import Settings
from stich.db import Database


def _boom() -> None:
    raise RuntimeError("a bug, not bad input")


def _peer(request: Request) -> dict[str, int]:
    """The client's port: the same port means the same TCP connection."""
    assert request.client is not None
    return {"port": request.client.port}


@pytest.fixture
def base_url(settings: Settings, db: Database) -> Iterator[str]:
    app = create_app(settings, db)
    app.add_api_route("/test/boom", _boom)
    app.add_api_route("/test/peer", _peer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # a wait for start-up, not a timed assertion
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join()
    sock.close()


def test_a_500_keeps_the_keep_alive_connection(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:  # one pooled keep-alive connection
        before = client.get("/test/peer").json()["port"]
        with capture_logs() as logs:
            failed = client.get("/test/boom")
        after = client.get("/test/peer")

    assert failed.status_code == 500
    error = failed.json()["error"]
    assert error["code"] == "internal_error"
    assert "a bug" not in failed.text  # the exception's text stays in the log
    # The request id the client can quote is the one the log line carries.
    assert error["details"]["request_id"] == failed.headers[REQUEST_ID_HEADER]
    [logged] = [entry for entry in logs if entry["event"] == "unhandled error"]
    assert logged["request_id"] == error["details"]["request_id"]
    assert logged["error_type"] == "RuntimeError"
    assert after.status_code == 200
    assert after.json()["port"] == before  # the same connection, not a reconnect
