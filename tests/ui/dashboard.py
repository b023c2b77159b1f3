"""Drive the dashboard (`/ui/`) in Debian's Chromium with Playwright, as a person would.

    async with browser() as chromium:
        ui = await chromium.login(cloud.serve.url, "alice", password, "class-a")
        await ui.goto("servers")
        await ui.row("vm1").wait_status("ACTIVE")

Each `login` opens its own browser context (its own sessionStorage), so several users can be
logged in side by side. `MININOVA_UI_SCREENSHOTS=<dir>` saves the views the tests name (the
pictures in docs/screenshots/ are taken this way: `scripts/ui-screenshots.sh`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.console.browser import CHROMIUM, CHROMIUM_ARGS, ConsolePage, browser_skip_reason
from tests.kit.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "webui/dist/app.js"
SCREENSHOTS_ENV = "MININOVA_UI_SCREENSHOTS"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def dashboard_skip_reason() -> str | None:
    """Why the dashboard cannot be driven here (None when it can)."""
    reason = browser_skip_reason()
    if reason:
        return reason
    if not BUNDLE.is_file():
        return "dashboard not built (webui/dist/app.js missing): run scripts/webui-setup.sh"
    return None


@dataclass
class ServerRow:
    """One `tr[data-name]` of a servers table."""

    ui: Dashboard
    name: str
    table: str = "#servers"

    @property
    def locator(self) -> Any:
        return self.ui.page.locator(f'{self.table} tr[data-name="{self.name}"]')

    async def status(self) -> str:
        if await self.locator.count() == 0:
            return ""
        return (await self.locator.locator("td.status").text_content() or "").strip()

    async def wait_status(
        self, want: str, timeout: float = 180, seen: list[str] | None = None
    ) -> str:
        """Wait until the row's status cell starts with `want`, recording each status shown."""
        trail = seen if seen is not None else []

        async def reached() -> str | None:
            text = await self.status()
            if text and (not trail or trail[-1] != text):
                trail.append(text)
            if text.startswith("ERROR") and want != "ERROR":
                raise AssertionError(f"{self.name} went to ERROR; statuses seen: {trail}")
            return text if text.startswith(want) else None

        try:
            return await wait_for(reached, timeout, 0.2)
        except AssertionError as exc:
            raise AssertionError(f"{self.name}: wanted {want}, saw {trail}: {exc}") from None

    async def wait_gone(self, timeout: float = 120) -> None:
        await self.ui.wait_count(f'{self.table} tr[data-name="{self.name}"]', 0, timeout)

    async def act(self, action: str) -> None:
        await self.locator.locator(f'button[data-action="{action}"]').click()

    async def act_confirmed(self, action: str) -> None:
        await self.act(action)
        await self.ui.confirm()


@dataclass
class Dashboard:
    """A logged-in (or not yet) dashboard tab."""

    page: Any
    base: str
    log: list[str] = field(default_factory=list)
    responses: list[tuple[str, str, int]] = field(default_factory=list)
    token: str = ""  # the Keystone token the last login issued (X-Subject-Token)

    async def goto(self, route: str) -> None:
        """Follow the navigation to `#/route` without reloading the page."""
        await self.page.evaluate("r => { window.location.hash = '#/' + r; }", route)

    async def fill_login(self, user: str, password: str, project: str = "") -> None:
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        form = self.page.locator("form#login")
        await form.locator('input[name="username"]').fill(user)
        await form.locator('input[name="password"]').fill(password)
        await form.locator('input[name="project"]').fill(project)

        def issued(resp: Any) -> bool:
            return resp.request.method == "POST" and resp.url.endswith("/v3/auth/tokens")

        try:
            async with self.page.expect_response(issued) as response:
                await form.locator('button[type="submit"]').click()
        except PlaywrightTimeout as exc:  # say what the page showed instead
            shown = await self.page.locator("#login-error").all_text_contents()
            raise AssertionError(
                f"no token response for {user}: login error {shown!r}, page {self.page.url}, "
                f"last responses {self.responses[-5:]}, console {self.log[-5:]}"
            ) from exc
        self.token = await (await response.value).header_value("x-subject-token") or ""

    async def wait_logged_in(self, timeout: float = 20) -> str:
        who = self.page.locator("#whoami")
        await who.wait_for(state="visible", timeout=timeout * 1000)
        return (await who.text_content() or "").strip()

    def row(self, name: str, table: str = "#servers") -> ServerRow:
        return ServerRow(self, name, table)

    async def wait_count(self, selector: str, count: int, timeout: float = 30) -> None:
        loc = self.page.locator(selector)
        seen: list[int] = [-1]

        async def done() -> bool:
            seen[0] = await loc.count()
            return seen[0] == count

        try:
            await wait_for(done, timeout, 0.2)
        except AssertionError:
            raise AssertionError(
                f"{selector}: {seen[0]} elements, wanted {count}; alerts={await self.alerts()}; "
                f"log={self.log[-10:]}"
            ) from None

    async def confirm(self) -> None:
        await self.page.locator("dialog#confirm button#confirm-ok").click()

    async def alerts(self) -> list[str]:
        texts = await self.page.locator(".alert-error").all_text_contents()
        return [t.strip() for t in texts if t.strip()]

    async def wait_alert(self, needle: str, timeout: float = 30) -> str:
        async def found() -> str | None:
            return next((t for t in await self.alerts() if needle in t), None)

        try:
            return await wait_for(found, timeout, 0.2)
        except AssertionError:
            raise AssertionError(
                f"no alert with {needle!r}; alerts={await self.alerts()}; log={self.log[-10:]}"
            ) from None

    async def console(self) -> ConsolePage:
        """The console embedded in the page (the iframe), as the console tests drive it."""
        frame_element = self.page.locator("section#console-panel iframe#console-frame")
        await frame_element.wait_for(state="visible", timeout=30_000)
        handle = await frame_element.element_handle()
        frame = await handle.content_frame()
        assert frame is not None, "the console iframe has no frame"
        await frame.wait_for_load_state()
        return ConsolePage(frame, self.log)

    async def screenshot(self, name: str) -> None:
        """Save the page as `<name>.png` when MININOVA_UI_SCREENSHOTS names a directory."""
        target = os.environ.get(SCREENSHOTS_ENV)
        if not target:
            return
        Path(target).mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


@dataclass
class Chromium:
    browser: Any
    contexts: list[Any] = field(default_factory=list)

    async def open(self, base: str, viewport: dict[str, int] | None = None) -> Dashboard:
        """A fresh context (own storage) on `base + /ui/`."""
        context = await self.browser.new_context(
            viewport=viewport or DESKTOP, accept_downloads=True
        )
        self.contexts.append(context)
        page = await context.new_page()
        ui = Dashboard(page, base)
        page.on("console", lambda msg: ui.log.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: ui.log.append(f"pageerror: {err}"))
        page.on(
            "response",
            lambda resp: ui.responses.append((resp.request.method, resp.url, resp.status)),
        )
        await page.goto(base + "/ui/")
        return ui

    async def login(
        self,
        base: str,
        user: str,
        password: str,
        project: str = "",
        viewport: dict[str, int] | None = None,
    ) -> Dashboard:
        ui = await self.open(base, viewport)
        await ui.fill_login(user, password, project)
        try:
            await ui.wait_logged_in()
        except Exception as exc:
            errors = await ui.page.locator("#login-error").all_text_contents()
            raise AssertionError(f"login as {user} failed: {errors} {ui.log[-10:]}") from exc
        return ui


@asynccontextmanager
async def browser() -> AsyncIterator[Chromium]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        handle = Chromium(chromium)
        try:
            yield handle
        finally:
            for context in handle.contexts:
                await context.close()
            await chromium.close()
