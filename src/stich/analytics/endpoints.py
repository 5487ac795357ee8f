"""HTTP endpoints for analytics (mounted under /api)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["analytics"])
