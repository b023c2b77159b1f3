"""Compute API: infra (placeholder until implemented)."""

from __future__ import annotations

from aiohttp import web


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
