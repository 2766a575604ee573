"""Alert configuration per service point and the alerts an account has had."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["portal alerts"])
