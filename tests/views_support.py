"""Views are queued by requests and counted in batches: tests flush the queue to see them."""

from __future__ import annotations

from fastapi.testclient import TestClient


def flush_views(client: TestClient) -> int:
    """Count every view this app's process has queued, now; how many were new in this
    call (the flusher thread may have counted some already: assert on the counts)."""
    counted: int = client.app.state.view_queue.flush()  # type: ignore[attr-defined]
    return counted
