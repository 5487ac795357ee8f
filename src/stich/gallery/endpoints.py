"""HTTP endpoints for gallery (mounted under /api)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["gallery"])
