"""Trust-boundary fixtures: a recorder of what the controller sends, agents and HTTP probes.

`sent_frames` records every websocket message the controller sends (aiohttp's
`WebSocketResponse` is only used server-side: the agents dial with `websockets`), so a test
can inspect exactly what an agent was told. `agent_get`/`agent_put` speak HTTP the way an
agent does: host credential as bearer, capability in `X-Mininova-Capability`, no Keystone
token.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from mininova.agent import Agent
from mininova.config import AgentConfig
from mininova.controller import Controller
from mininova.identity.service import token_hash
from mininova.protocol.core import CAPABILITY_HEADER
from mininova.store import identity as identity_store
from mininova.virt.driver import ComputeDriver

IMAGES = "/image/v2/images"
SERVERS = "/compute/v2.1/servers"


# -- what the controller sends ----------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    ws: web.WebSocketResponse
    data: str | bytes

    @property
    def text(self) -> bool:
        return isinstance(self.data, str)

    def json(self) -> Any:
        """The decoded JSON frame, or None when this is not one (e.g. console bytes)."""
        raw = self.data
        try:
            if isinstance(raw, bytes | bytearray | memoryview):
                raw = bytes(raw).decode()
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            return None


@pytest.fixture
def sent_frames(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every message any server-side websocket sends from now on, in order."""
    frames: list[Sent] = []
    send_str = web.WebSocketResponse.send_str
    send_bytes = web.WebSocketResponse.send_bytes
    send_frame = web.WebSocketResponse.send_frame

    async def rec_str(self: web.WebSocketResponse, data: str, *a: Any, **kw: Any) -> None:
        frames.append(Sent(self, data))
        await send_str(self, data, *a, **kw)

    async def rec_bytes(self: web.WebSocketResponse, data: bytes, *a: Any, **kw: Any) -> None:
        frames.append(Sent(self, bytes(data)))
        await send_bytes(self, data, *a, **kw)

    async def rec_frame(
        self: web.WebSocketResponse, message: bytes, opcode: WSMsgType, *a: Any, **kw: Any
    ) -> None:
        if opcode == WSMsgType.TEXT:
            frames.append(Sent(self, bytes(message).decode(errors="replace")))
        elif opcode == WSMsgType.BINARY:
            frames.append(Sent(self, bytes(message)))
        await send_frame(self, message, opcode, *a, **kw)

    # send_json -> send_str and send_json_bytes -> send_bytes: both are covered.
    monkeypatch.setattr(web.WebSocketResponse, "send_str", rec_str)
    monkeypatch.setattr(web.WebSocketResponse, "send_bytes", rec_bytes)
    monkeypatch.setattr(web.WebSocketResponse, "send_frame", rec_frame)
    return frames


def protocol_frames(frames: list[Sent], link: web.WebSocketResponse | None = None) -> list[dict]:
    """The JSON protocol frames (requests, notifications, replies) among `frames`."""
    out = []
    for frame in frames:
        if link is not None and frame.ws is not link:
            continue
        body = frame.json()
        if isinstance(body, dict) and ("method" in body or "result" in body or "error" in body):
            out.append(body)
    return out


def orders(frames: list[dict], method: str) -> list[dict]:
    return [f for f in frames if f.get("method") == method]


def walk_strings(obj: Any) -> Iterator[str]:
    """Every string in a JSON value: keys and values, at any depth."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from walk_strings(item)


_SECRETISH = re.compile(r"[A-Za-z0-9_\-]{20,}")


def candidate_secrets(text: str) -> set[str]:
    """The string itself plus every long url-safe run in it (a token inside a URL/header)."""
    return {text, *_SECRETISH.findall(text)}


async def keystone_hashes(controller: Controller) -> set[str]:
    assert controller.store is not None
    return await identity_store.token_hashes(controller.store)


async def assert_no_keystone_token(
    controller: Controller, frames: list[dict], known_tokens: list[str]
) -> int:
    """No string in `frames` is (or embeds) a Keystone token; returns how many were checked."""
    from mininova.identity.service import AuthFailed

    assert controller.services is not None
    identity = controller.services.identity
    hashes = await keystone_hashes(controller)
    assert hashes, "no Keystone token was issued during the run: the check would prove nothing"
    assert {token_hash(t) for t in known_tokens} <= hashes
    checked = 0
    for frame in frames:
        for text in walk_strings(frame):
            for candidate in candidate_secrets(text):
                checked += 1
                assert token_hash(candidate) not in hashes, (
                    f"a Keystone token reached the agent in {frame.get('method')!r} frame"
                    f" {json.dumps(frame)[:300]}"
                )
                for token in known_tokens:
                    assert token not in candidate, f"Keystone token inside {frame}"
                if len(candidate) >= 20:
                    with pytest.raises(AuthFailed):
                        await identity.validate(candidate)
    return checked


# -- agents -----------------------------------------------------------------------------------


def agent_config(controller: Controller, data_dir: Path, host: str, **kw: Any) -> AgentConfig:
    return AgentConfig(
        controller=controller.config.base_url,
        token=controller.join_token,
        host=host,
        data_dir=data_dir,
        heartbeat_interval=0.5,
        reconnect_max_backoff=0.5,
        **kw,
    )


async def start_agent(config: AgentConfig, driver: ComputeDriver) -> tuple[Agent, asyncio.Task]:
    agent = Agent(config, driver)
    task = asyncio.create_task(agent.run(), name=f"agent {config.host}")
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
    except TimeoutError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise AssertionError(f"agent {config.host} never connected") from None
    return agent, task


async def stop_agent(task: asyncio.Task) -> None:
    from mininova.agent import tunnel

    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await tunnel.close_all()


def stored_credential(data_dir: Path) -> str:
    """The host credential an agent saved at its first hello."""
    return json.loads((data_dir / "credential.json").read_text())["credential"]


# -- HTTP the way an agent speaks it -------------------------------------------------------------


@dataclass
class AgentHttp:
    base: str
    session: aiohttp.ClientSession

    async def request(
        self,
        method: str,
        path: str,
        credential: str | None,
        capability: str | None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, Any]:
        hdrs = dict(headers or {})
        if credential is not None:
            hdrs["Authorization"] = f"Bearer {credential}"
        if capability is not None:
            hdrs[CAPABILITY_HEADER] = capability
        if data is not None:
            hdrs.setdefault("Content-Type", "application/octet-stream")
        async with self.session.request(method, self.base + path, data=data, headers=hdrs) as r:
            raw = await r.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            return r.status, raw, body

    async def get(self, path: str, credential: str | None, capability: str | None, **kw: Any):
        return await self.request("GET", path, credential, capability, **kw)

    async def put(
        self, path: str, credential: str | None, capability: str | None, data: bytes, **kw: Any
    ):
        return await self.request("PUT", path, credential, capability, data=data, **kw)


@pytest.fixture
async def agent_http(controller: Controller) -> AsyncIterator[AgentHttp]:
    async with aiohttp.ClientSession() as session:
        yield AgentHttp(controller.config.base_url, session)


def file_path(image_id: str) -> str:
    return f"{IMAGES}/{image_id}/file"


def nova_error(body: Any, status: int) -> str:
    """The message of a Nova-style error body `{"<kind>": {"code": status, "message": m}}`."""
    assert isinstance(body, dict) and len(body) == 1, body
    (inner,) = body.values()
    assert inner["code"] == status, body
    return inner["message"]
