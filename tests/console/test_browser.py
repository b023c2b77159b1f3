"""The web console in headless Chromium: noVNC through the proxy and tunnel to the fake VNC."""

from __future__ import annotations

import pytest

from tests.console.browser import browser_skip_reason, console_page
from tests.console.conftest import ConsoleEnv
from tests.kit.clock import FakeClock

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _need_browser() -> None:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)


async def test_browser_console_shows_guest_and_sends_keys(env: ConsoleEnv) -> None:
    uuid = await env.server("browser-vm")
    url = await env.console_url(uuid)
    async with console_page(url) as console:
        before = await console.wait_connected()
        assert await console.title_name() == "browser-vm"
        assert len(before.colors()) >= 4, "the fake VNC pattern is not visible"
        await console.press("a")
        after = await console.wait_screen_change(before)
        assert after.differing_pixels(before) > 1000
        # Ctrl-Alt-Del reaches the guest too (three key presses).
        await console.ctrl_alt_del()
        await console.wait_screen_change(after)
        assert console.page.url == url


async def test_browser_shows_expired_and_invalid_tokens(
    env: ConsoleEnv, fake_clock: FakeClock
) -> None:
    uuid = await env.server("expiring-vm")
    url = await env.console_url(uuid)
    fake_clock.advance(env.controller.config.console_token_ttl)  # expiry is inclusive
    async with console_page(url) as console:
        await console.wait_state("error")
        assert "expired" in (await console.message()).lower()
        await console.page.goto(env.base + "/ui/console.html?token=forged-token")
        await console.wait_state("error")
        assert "invalid" in (await console.message()).lower()
