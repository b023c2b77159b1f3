"""nova-novncproxy: the console websocket proxy and the web console page, on the API port.

Routes (public but for /tunnel/tcp: the console token / tunnel token is the credential):

* `GET /console/websockify?token=T[&instance=UUID]` browser websocket (noVNC, subprotocol binary)
* `GET /console/info?token=T`                      pre-check for the console page (JSON)
* `GET /agent/tunnel/{id}`                           the agent's dial-in (Upgrade: tcp; tunnel token)
* `GET /tunnel/tcp/{server_id}?port=P`               TCP to a guest (X-Auth-Token; `tcp.py`)
* `GET /agent/tcp-tunnel/{id}`                       the agent's dial-in of a TCP tunnel
* `GET /ui/...`                                      the web console page (`webui/`)
* `GET /ui/novnc/...`                                noVNC's ES modules (`webui/node_modules/@novnc/novnc`)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from mininova.agenthub import AgentHub
    from mininova.config import ServeConfig
    from mininova.consoleauth.client import ConsoleAuthClient
    from mininova.consoleproxy.proxy import ConsoleProxy
    from mininova.store import Store


def setup(
    app: web.Application,
    *,
    config: ServeConfig,
    store: Store,
    consoleauth: ConsoleAuthClient,
    hub: AgentHub | None,
) -> ConsoleProxy:
    """Add the console routes and the web console pages to `app`; returns the proxy."""
    from mininova.consoleproxy.proxy import ConsoleProxy
    from mininova.consoleproxy.static import setup_static
    from mininova.consoleproxy.tcp import setup_tcp_tunnels

    proxy = ConsoleProxy(config=config, store=store, consoleauth=consoleauth, hub=hub)
    proxy.setup(app)
    setup_tcp_tunnels(app, config=config, store=store, hub=hub)
    setup_static(app, config)
    return proxy
