"""`stich dev replicas up|status|down` on a real scratch cluster (in-process, via Typer)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url
from typer.testing import CliRunner

from stich.cli.main import app
from stich.db.local_cluster import ClusterError

runner = CliRunner()


def _stich(*args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output, result.exception


def _exported(output: str, name: str) -> str:
    match = re.search(rf"export {name}=(\S+)", output)
    assert match, output
    return match.group(1)


def _in_recovery(url: str) -> bool:
    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database
    ) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    assert row is not None
    return bool(row[0])


def test_up_status_down(pg_bin: Path) -> None:
    directory = Path(tempfile.mkdtemp(prefix="stich-cli-replicas-", dir="/tmp"))
    try:
        code, output, error = _stich(
            "dev", "replicas", "up", "--replicas", "1", "--dir", str(directory)
        )
        assert code == 0, (output, error)
        primary = _exported(output, "STICH_DATABASE_URL")
        replicas = _exported(output, "STICH_READ_REPLICA_URLS").split(",")
        assert len(replicas) == 1
        assert not _in_recovery(primary)
        assert _in_recovery(replicas[0])

        code, output, error = _stich("dev", "replicas", "status", "--dir", str(directory))
        assert code == 0, (output, error)
        assert re.search(r"replica-1\s.*running\s.*replica", output), output

        # Asking for another shape of an existing cluster is a clear user error.
        code, output, error = _stich(
            "dev", "replicas", "up", "--replicas", "2", "--dir", str(directory)
        )
        assert isinstance(error, ClusterError)
        assert "already holds a cluster with 1 replicas" in error.message
    finally:
        code, output, error = _stich("dev", "replicas", "down", "--dir", str(directory))
    assert code == 0, (output, error)
    assert not directory.exists()


def test_status_without_a_cluster_says_so(tmp_path: Path) -> None:
    _, _, error = _stich("dev", "replicas", "status", "--dir", str(tmp_path / "nothing"))
    assert isinstance(error, ClusterError)
    assert "no local cluster" in error.message


@pytest.mark.parametrize("replicas", ["0", "99"])
def test_replica_count_is_bounded(replicas: str, tmp_path: Path) -> None:
    code, output, _ = _stich(
        "dev", "replicas", "up", "--replicas", replicas, "--dir", str(tmp_path)
    )
    assert code == 2
    assert "--replicas" in output
