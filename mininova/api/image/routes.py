"""Glance v2 subset (placeholder until implemented)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the image routes."""
