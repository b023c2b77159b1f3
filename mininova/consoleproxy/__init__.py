"""nova-novncproxy: the console websocket proxy and the web console page, on the API port.

Routes (all public: the console token / tunnel token is the credential):

* `GET /console/websockify?token=T[&instance=UUID]` browser websocket (noVNC, subprotocol binary)
* `GET /console/info?token=T`                      pre-check for the console page (JSON)
* `GET /agent/tunnel/{id}`                           the agent's data websocket (Bearer tunnel token)
* `GET /ui/...`                                      the web console page (`webui/`)
* `GET /ui/novnc/...`                                noVNC's ES modules (`webui/node_modules/@novnc/novnc`)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

PROXY_KEY = "consoleproxy"


def setup(app: web.Application, services: Any) -> None:
    from mininova.consoleproxy.proxy import ConsoleProxy
    from mininova.consoleproxy.static import setup_static

    proxy = ConsoleProxy(services)
    proxy.setup(app)
    services.extra[PROXY_KEY] = proxy
    setup_static(app, services)
