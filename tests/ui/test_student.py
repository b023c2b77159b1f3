"""The student's dashboard in Chromium against a real cloud (serve + libvirt agent + QEMU).

In file order, sharing one cloud: a student launches the tiny image, watches BUILD -> ACTIVE
without a reload, uses the embedded console, stops and deletes the server; keypairs and an
image made in the browser are seen by the `openstack` CLI and the other way round; an upload
shows its progress; over quota, Nova's message; an expired session goes back to the login and
then to the page the student was on.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.kit.wait import wait_for
from tests.libvirt_e2e.conftest import Cloud, make_ed25519_public_key
from tests.ui.dashboard import PHONE, browser
from tests.ui.helpers import FLAVOR, Account, cli, cli_json, ui_skip_reason

SKIP_REASON = ui_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.browser,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]


async def test_root_redirects_a_browser_to_the_dashboard(cloud: Cloud) -> None:
    async with browser() as chromium:
        ui = await chromium.open(cloud.serve.url)
        await ui.page.goto(cloud.serve.url + "/")
        assert ui.page.url.startswith(cloud.serve.url + "/ui/"), ui.page.url
        await ui.page.locator("form#login").wait_for(state="visible")
    # An API client asking for JSON still gets the endpoints.
    root = await cli_json_root(cloud)
    assert root["compute"].endswith("/compute/v2.1")


async def cli_json_root(cloud: Cloud) -> dict:
    import json
    import urllib.request

    request = urllib.request.Request(cloud.serve.url + "/", headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
        return json.load(resp)


async def test_student_launches_watches_console_stops_deletes(
    cloud: Cloud, student: Account, tiny_image: str
) -> None:
    async with browser() as chromium:
        ui = await chromium.login(cloud.serve.url, student.user, student.password, student.project)
        assert student.user in await ui.wait_logged_in()
        assert student.project in await ui.wait_logged_in()
        # Members see no instructor links.
        assert await ui.page.locator('nav a[href="#/admin/roster"]').count() == 0
        await ui.goto("servers")
        await ui.page.evaluate("window.__sameDocument = 'still here'")

        await ui.page.locator("button#launch").click()
        form = ui.page.locator("dialog#launch-dialog form#launch-form")
        await form.locator('input[name="name"]').fill("vm-ui")
        await form.locator('select[name="image"]').select_option(label=tiny_image)
        await form.locator('select[name="flavor"]').select_option(label=FLAVOR)
        await ui.page.locator("button#launch-submit").click()

        seen: list[str] = []
        row = ui.row("vm-ui")
        await row.wait_status("ACTIVE", timeout=240, seen=seen)
        assert any(s.startswith("BUILD") for s in seen), f"BUILD never shown: {seen}"
        # The status changed in place: the same document, never reloaded.
        assert await ui.page.evaluate("window.__sameDocument") == "still here"
        await ui.screenshot("student-servers")

        shown = await cli_json(cloud, "server", "show", "vm-ui", account=student)
        assert (shown["status"], shown["name"]) == ("ACTIVE", "vm-ui")
        cloud.ids.add(shown["id"])

        await row.act("console")
        console = await ui.console()
        screen = await console.wait_connected(timeout=90)
        pixels = Counter(screen.rgba[i : i + 4] for i in range(0, len(screen.rgba), 4))
        _, background = pixels.most_common(1)[0]
        text_fraction = 1 - background / (screen.width * screen.height)
        assert text_fraction > 0.005, f"the embedded console looks blank ({text_fraction:.4f})"
        await ui.screenshot("student-console")
        await ui.page.locator("#console-close").click()

        await row.act("log")
        log = ui.page.locator("section#log-panel pre#console-log")
        await log.wait_for(state="visible")

        async def identity_line() -> bool:
            if "hostname=vm-ui" in (await log.text_content() or ""):
                return True
            await ui.page.locator("#log-refresh").click()
            return False

        # The tiny guest prints its identity from the config drive on the serial console.
        await wait_for(identity_line, 180, 2, "the guest's identity line in the dashboard")
        cli_log = (await cli(cloud, "console", "log", "show", "vm-ui", account=student)).stdout
        assert "hostname=vm-ui" in cli_log
        await ui.page.locator("#log-close").click()

        await row.act("stop")
        await row.wait_status("SHUTOFF", timeout=120)
        shown = await cli_json(cloud, "server", "show", "vm-ui", account=student)
        assert shown["status"] == "SHUTOFF"

        await row.act_confirmed("delete")
        await row.wait_gone(timeout=120)
        listed = await cli_json(cloud, "server", "list", account=student)
        assert [s["Name"] for s in listed] == []


async def test_keypairs_both_ways(cloud: Cloud, student: Account, tmp_path: Path) -> None:
    public_key, fingerprint = make_ed25519_public_key(tmp_path / "cli.pub")
    await cli(
        cloud,
        "keypair",
        "create",
        "--public-key",
        str(tmp_path / "cli.pub"),
        "cli-key",
        account=student,
    )
    async with browser() as chromium:
        ui = await chromium.login(cloud.serve.url, student.user, student.password, student.project)
        await ui.goto("keypairs")
        made_by_cli = ui.page.locator('table#keypairs tr[data-keypair="cli-key"]')
        await made_by_cli.wait_for(state="visible")
        assert fingerprint in (await made_by_cli.text_content() or "")

        form = ui.page.locator("form#keypair-create")
        await form.locator('input[name="name"]').fill("ui-key")
        async with ui.page.expect_download() as download_info:
            await form.locator('button[type="submit"]').click()
        download = await download_info.value
        assert download.suggested_filename == "ui-key.pem"
        pem = Path(await download.path()).read_text()
        assert pem.startswith("-----BEGIN") and "PRIVATE KEY-----" in pem
        await ui.page.locator('table#keypairs tr[data-keypair="ui-key"]').wait_for()

        imported = ui.page.locator("form#keypair-import")
        await imported.locator('input[name="name"]').fill("ui-imported")
        await imported.locator('textarea[name="public_key"]').fill(public_key)
        await imported.locator('button[type="submit"]').click()
        await ui.page.locator('table#keypairs tr[data-keypair="ui-imported"]').wait_for()

    names = {k["Name"] for k in await cli_json(cloud, "keypair", "list", account=student)}
    assert names == {"cli-key", "ui-key", "ui-imported"}
    shown = await cli_json(cloud, "keypair", "show", "ui-imported", account=student)
    assert shown["fingerprint"] == fingerprint


async def test_image_upload_shows_progress(cloud: Cloud, student: Account, tmp_path: Path) -> None:
    data = tmp_path / "upload.raw"
    data.write_bytes(os.urandom(24 * 1024 * 1024))
    async with browser() as chromium:
        ui = await chromium.login(cloud.serve.url, student.user, student.password, student.project)
        await ui.goto("images")
        # On loopback 24 MiB may go up between two progress events: throttle the upload (as a
        # student's home link would) so that the bar has something to show between 0 and 100.
        cdp = await ui.page.context.new_cdp_session(ui.page)
        await cdp.send("Network.enable")
        await cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": 8 * 1024 * 1024,
            },
        )
        form = ui.page.locator("form#image-upload")
        await form.locator('input[name="name"]').fill("ui-upload")
        await form.locator('input[name="file"]').set_input_files(str(data))
        await form.locator('select[name="disk_format"]').select_option("raw")
        await ui.page.locator("button#upload-submit").click()
        row = ui.page.locator('table#images tr[data-name="ui-upload"]')
        await row.wait_for(timeout=120_000)
        await ui.wait_count('table#images tr[data-name="ui-upload"]:has-text("active")', 1, 60)
        progress = await ui.page.evaluate("window.mininovaUi.uploadProgress")
        assert progress and progress[-1] == 100, progress
        assert any(0 < value < 100 for value in progress), f"no progress shown: {progress}"
        assert await ui.page.locator("progress#upload-progress").get_attribute("value") == "100"
        await ui.screenshot("student-images")

    shown = await cli_json(cloud, "image", "show", "ui-upload", account=student)
    assert (shown["status"], shown["size"]) == ("active", data.stat().st_size)
    await cli(cloud, "image", "delete", "ui-upload", account=student)


async def test_over_quota_shows_novas_message(
    cloud: Cloud, student: Account, tiny_image: str
) -> None:
    await cli(cloud, "quota", "set", "--instances", "0", student.project)
    try:
        async with browser() as chromium:
            ui = await chromium.login(
                cloud.serve.url, student.user, student.password, student.project
            )
            await ui.goto("servers")
            gauge = ui.page.locator('section#quotas meter[data-quota="instances"]')
            await gauge.wait_for()
            await ui.page.locator("button#launch").click()
            form = ui.page.locator("dialog#launch-dialog form#launch-form")
            await form.locator('input[name="name"]').fill("too-many")
            await form.locator('select[name="image"]').select_option(label=tiny_image)
            await form.locator('select[name="flavor"]').select_option(label=FLAVOR)
            await ui.page.locator("button#launch-submit").click()
            shown = await ui.wait_alert("Quota exceeded for instances")
            assert "already used 0 of 0 instances" in shown, shown
            assert await ui.page.locator("dialog#launch-dialog").is_visible()
    finally:
        await cli(cloud, "quota", "set", "--instances", "10", student.project)
    assert await cli_json(cloud, "server", "list", account=student) == []


async def test_expired_session_returns_to_the_page(cloud: Cloud, student: Account) -> None:
    async with browser() as chromium:
        ui = await chromium.login(
            cloud.serve.url, student.user, student.password, student.project, viewport=PHONE
        )
        await ui.goto("servers")
        await ui.page.locator("section#quotas").wait_for()
        await ui.screenshot("student-phone")
        await cli(cloud, "token", "revoke", ui.token)  # as if it had expired
        error = ui.page.locator("#login-error")
        await error.wait_for(state="visible", timeout=30_000)
        assert "expired" in (await error.text_content() or "")
        await ui.fill_login(student.user, student.password, student.project)
        await ui.wait_logged_in()
        await ui.page.locator("section#quotas").wait_for()
        assert ui.page.url.endswith("#/servers"), ui.page.url

        # At phone width nothing sticks out sideways (wide tables scroll inside their box).
        overflow = await ui.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the page is {overflow} px wider than a phone screen"

        await ui.page.locator("button#logout").click()
        await ui.page.locator("form#login").wait_for()
        # Everything the page loaded or called came from the one origin (no CDN).
        foreign = [url for _, url, _ in ui.responses if not url.startswith(cloud.serve.url)]
        assert foreign == [], foreign
    # Logout revoked the token.
    proc = await cli(cloud, "token", "revoke", ui.token, check=False)
    assert proc.returncode != 0


async def test_keyboard_only_login_and_launch_dialog(cloud: Cloud, student: Account) -> None:
    """Log in, reach the launch dialog and close it with the keyboard alone."""
    async with browser() as chromium:
        ui = await chromium.open(cloud.serve.url)
        page = ui.page
        await page.locator('form#login input[name="username"]').focus()
        await page.keyboard.type(student.user)
        await page.keyboard.press("Tab")
        await page.keyboard.type(student.password)
        await page.keyboard.press("Tab")
        await page.keyboard.type(student.project)
        await page.keyboard.press("Enter")
        await ui.wait_logged_in()
        await ui.goto("servers")
        await page.locator("button#launch").wait_for()
        for _ in range(30):  # Tab through the page until the launch button has the focus
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement && document.activeElement.id") == (
                "launch"
            ):
                break
        else:
            raise AssertionError("the launch button is not reachable with Tab")
        await page.keyboard.press("Enter")
        dialog = page.locator("dialog#launch-dialog")
        await dialog.wait_for(state="visible")
        focused_inside = await page.evaluate(
            "document.getElementById('launch-dialog').contains(document.activeElement)"
        )
        assert focused_inside, "the launch dialog did not take the focus"
        await page.keyboard.press("Escape")
        await dialog.wait_for(state="hidden")
