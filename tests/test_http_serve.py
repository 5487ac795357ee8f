"""``stich serve --workers N``: N server processes on one port, each answering."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import uvicorn.importer
from fastapi import FastAPI

from stich.bench.http import Server, _wait_ready
from stich.cli.serve import APP_FACTORY
from stich.db.local_cluster import free_ports
from tests.conftest import TEST_KEY_RING, TEST_SERVER_KEY

pytestmark = pytest.mark.db


def test_the_app_factory_is_importable_by_name(settings: object) -> None:
    factory = uvicorn.importer.import_from_string(APP_FACTORY)
    assert callable(factory)
    assert factory.__module__ == "stich.api.app"
    assert isinstance(factory(settings), FastAPI)


def _serve(
    database_url: str, tmp_path: Path, *args: str, **env: str
) -> tuple[Server, subprocess.Popen[bytes]]:
    port = free_ports(1)[0]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STICH_")}
    environment.update(
        STICH_DATABASE_URL=database_url,
        STICH_SERVER_KEY=TEST_SERVER_KEY,
        STICH_SECRETS_KEYS=TEST_KEY_RING,
        STICH_LOG_LEVEL="WARNING",
        STICH_EMBEDDED_WORKER="off",
        **env,
    )
    command = [sys.executable, "-m", "stich.cli", "serve", "--port", str(port), *args]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process.pid)
    _wait_ready(server.base_url, process, log)
    return server, process


def _workers(pid: int) -> list[int]:
    """Server processes the uvicorn supervisor spawned (not multiprocessing's resource
    tracker), from Linux /proc."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("args", "env"),
    [(("--workers", "2"), {}), ((), {"STICH_WEB_CONCURRENCY": "2"})],
    ids=["flag", "setting"],
)
def test_serve_runs_the_asked_number_of_processes_on_one_port(
    database_url: str, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    server, process = _serve(database_url, tmp_path, *args, **env)
    try:
        workers = _workers(process.pid)
        assert len(workers) == 2
        # Each process built its own app and pools: every one answers a database read.
        with httpx.Client(base_url=server.base_url) as client:
            for _ in range(20):
                assert client.get("/readyz").status_code == 200
                assert client.get("/api/apps/public").status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
