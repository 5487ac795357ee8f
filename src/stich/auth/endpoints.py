"""HTTP endpoints for auth (mounted under /api)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["auth"])
