"""The instructor's dashboard in Chromium against a real cloud (serve + libvirt agent + QEMU).

One story, in order: the instructor sees the host, imports a 3-student CSV (projects, users,
quotas, a credentials sheet and each student's clouds.yaml), gives every student one VM of the
tiny image; each student logs in and sees only their own server, and is refused the admin
pages; the CLI sees what the dashboard made (and a student's clouds.yaml works with it); the
end-of-class bulk delete removes the servers, users and projects.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from tests.libvirt_e2e.conftest import HOST, Cloud
from tests.ui.dashboard import Chromium, Dashboard, browser
from tests.ui.helpers import FLAVOR, Account, cli, cli_json, ui_skip_reason

SKIP_REASON = ui_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.browser,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]

CLASS = "cs101"
STUDENTS = ("stu1", "stu2", "stu3")
ROSTER_CSV = "username,email\nstu1,stu1@example.org\n\nstu2,stu2@example.org\nstu3\n"


async def _instructor(chromium: Chromium, cloud: Cloud) -> Dashboard:
    ui = await chromium.login(cloud.serve.url, "admin", cloud.serve.password, "admin")
    assert await ui.page.locator('nav a[href="#/admin/roster"]').count() == 1
    return ui


async def _bulk_results(ui: Dashboard, timeout: float) -> dict[str, tuple[str, str]]:
    """Wait until every student has a result; {item: (ok|failed, text)}."""
    await ui.wait_count("ul#bulk-results li.ok, ul#bulk-results li.failed", len(STUDENTS), timeout)
    results = {}
    for item in await ui.page.locator("ul#bulk-results li").all():
        classes = (await item.get_attribute("class") or "").split()
        outcome = "ok" if "ok" in classes else "failed" if "failed" in classes else "?"
        results[await item.get_attribute("data-item")] = (outcome, await item.text_content())
    return results


async def _clouds_yaml(ui: Dashboard, student: str, into: Path) -> dict:
    async with ui.page.expect_download() as info:
        await ui.page.locator(f'a[data-clouds-yaml="{student}"]').click()
    download = await info.value
    target = into / f"{student}-clouds.yaml"
    await download.save_as(str(target))
    return yaml.safe_load(target.read_text())


async def test_hosts_page_shows_the_libvirt_host(cloud: Cloud) -> None:
    async with browser() as chromium:
        ui = await _instructor(chromium, cloud)
        await ui.goto("admin/hosts")
        row = ui.page.locator(f'table#hosts tr[data-host="{HOST}"]')
        await row.wait_for(timeout=30_000)
        assert (await row.locator("td.state").text_content() or "").strip().startswith("up")
        hypervisor = await cli_json(
            cloud, "--os-compute-api-version", "2.87", "hypervisor", "show", HOST
        )
        vcpus = row.locator('meter[data-resource="vcpus"]')
        assert await vcpus.get_attribute("max") == str(hypervisor["vcpus"])
        for resource in ("ram", "disk"):
            assert await row.locator(f'meter[data-resource="{resource}"]').count() == 1
        await ui.screenshot("instructor-hosts")


async def test_class_roster_from_csv_to_end_of_class(
    cloud: Cloud, tiny_image: str, tmp_path: Path
) -> None:
    async with browser() as chromium:
        ui = await _instructor(chromium, cloud)
        await ui.goto("admin/roster")
        await ui.page.locator("input#roster-class").fill(CLASS)
        await ui.page.locator("textarea#roster-csv").fill(ROSTER_CSV)
        await ui.page.locator("input#roster-instances").fill("2")
        await ui.page.locator("input#roster-cores").fill("2")
        await ui.page.locator("input#roster-ram").fill("512")
        await ui.page.locator("button#roster-import").click()
        results = await _bulk_results(ui, 60)
        assert {k: v[0] for k, v in results.items()} == dict.fromkeys(STUDENTS, "ok"), results
        await ui.page.locator("section#credentials-sheet").wait_for()
        await ui.screenshot("instructor-roster")

        accounts: dict[str, Account] = {}
        for student in STUDENTS:
            clouds = (await _clouds_yaml(ui, student, tmp_path))["clouds"]
            ((name, entry),) = clouds.items()
            auth = entry["auth"]
            assert (name, auth["username"]) == (f"{CLASS}-{student}", student)
            assert auth["auth_url"] == cloud.serve.url + "/identity/v3"
            accounts[student] = Account(student, auth["password"], auth["project_name"])
            sheet = await ui.page.locator("section#credentials-sheet").text_content() or ""
            assert auth["password"] in sheet and student in sheet

        # The CLI sees the roster: tagged projects, users, quotas.
        projects = await cli_json(cloud, "project", "list", "--tags", f"roster:{CLASS}")
        assert sorted(p["Name"] for p in projects) == [f"{CLASS}-{s}" for s in STUDENTS]
        rows = await cli_json(cloud, "quota", "show", "--compute", f"{CLASS}-stu2")
        quota = {row["Resource"]: row["Limit"] for row in rows}  # OSC 7+: one row per resource
        assert (quota["instances"], quota["cores"], quota["ram"]) == (2, 2, 512)

        # One VM each, in one action.
        await ui.page.locator("select#roster-select").select_option(label=CLASS)
        await ui.page.locator("select#bulk-image").select_option(label=tiny_image)
        await ui.page.locator("select#bulk-flavor").select_option(label=FLAVOR)
        await ui.page.locator("input#bulk-count").fill("1")
        await ui.page.locator("button#bulk-launch").click()
        results = await _bulk_results(ui, 120)
        assert {k: v[0] for k, v in results.items()} == dict.fromkeys(STUDENTS, "ok"), results

        servers = await cli_json(cloud, "server", "list", "--all-projects", "--long")
        by_name = {s["Name"]: s for s in servers}
        assert sorted(by_name) == [f"{s}-vm1" for s in STUDENTS], by_name
        cloud.ids.update(s["ID"] for s in servers)

        # The instructor's all-servers view, filtered by project name.
        await ui.goto("admin/servers")
        await ui.page.locator("input#filter-project").fill(f"{CLASS}-stu1")
        await ui.wait_count("table#all-servers tr[data-server-id]", 1, 30)
        await ui.page.locator('table#all-servers tr[data-name="stu1-vm1"]').wait_for()

        # Each student: own server only, admin pages refused with the API's 403.
        for student, account in accounts.items():
            mine = await chromium.login(cloud.serve.url, student, account.password)
            assert account.project in await mine.wait_logged_in()
            await mine.goto("servers")
            await mine.row(f"{student}-vm1").wait_status("ACTIVE", timeout=240)
            await mine.wait_count("table#servers tr[data-server-id]", 1)
            await mine.goto("admin/hosts")
            refusal = mine.page.locator("div#not-allowed")
            await refusal.wait_for(timeout=20_000)
            assert (await refusal.text_content() or "").strip().startswith("Not allowed:")
            assert any(
                "/os-hypervisors" in url and status == 403 for _, url, status in mine.responses
            ), mine.responses[-5:]
            assert await mine.page.locator("table#hosts").count() == 0
            # The downloaded clouds.yaml works with the real CLI, and shows the same.
            env = dict(cloud.env)
            for key in [k for k in env if k.startswith("OS_")]:
                del env[key]
            env.update(
                {
                    "OS_CLIENT_CONFIG_FILE": str(tmp_path / f"{student}-clouds.yaml"),
                    "OS_CLOUD": f"{CLASS}-{student}",
                }
            )
            from tests.e2e.procs import run_client

            listed = await asyncio.to_thread(
                run_client, env, "openstack", "server", "list", "-f", "value", "-c", "Name"
            )
            assert listed.stdout.split() == [f"{student}-vm1"]

        # End of class: one action deletes servers, users and projects.
        await ui.goto("admin/roster")
        await ui.page.locator("select#roster-select").select_option(label=CLASS)
        await ui.page.locator("button#bulk-delete").click()
        await ui.confirm()
        results = await _bulk_results(ui, 300)
        assert {k: v[0] for k, v in results.items()} == dict.fromkeys(STUDENTS, "ok"), results
        await ui.wait_count(f'select#roster-select option:text-is("{CLASS}")', 0, 30)

    assert await cli_json(cloud, "server", "list", "--all-projects") == []
    assert await cli_json(cloud, "project", "list", "--tags", f"roster:{CLASS}") == []
    users = {u["Name"] for u in await cli_json(cloud, "user", "list")}
    assert not users & set(STUDENTS), users
    proc = await cli(cloud, "project", "show", f"{CLASS}-stu1", check=False)
    assert proc.returncode != 0
