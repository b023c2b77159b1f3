"""nova-novncproxy (placeholder)."""

from aiohttp import web


def setup(app: web.Application, services) -> None:
    pass
