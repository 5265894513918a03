"""The operator's console in a real browser: the system's headless chromium driven by Playwright.

Behind the page is the real web app (uvicorn in the test's loop) over a fake CentralView, so
each test sets up what the central knows and checks what an operator sees and can do.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from central.view import DeviceProblem
from tests.support.fakecentral import FakeCentral, alarm, hub, iso, serving
from tests.support.until import until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not shutil.which("chromium"), reason="the system's chromium is not installed (apt install chromium)"),
]
#: A tablet held upright, in CSS pixels.
TABLET = {"width": 800, "height": 1280}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        await b.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site() -> AsyncIterator[tuple[FakeCentral, str]]:
    fake = FakeCentral()
    async with serving(fake) as base:
        yield fake, base


@pytest_asyncio.fixture(loop_scope="module")
async def fake(site: tuple[FakeCentral, str]) -> FakeCentral:
    site[0].reset()
    await until(lambda: site[0].subscribers == 0, timeout=5, what="earlier pages' streams closed")
    return site[0]


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, fake: FakeCentral) -> AsyncIterator[Page]:
    ctx = await browser.new_context(viewport=TABLET, has_touch=True)
    p = await ctx.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    await ctx.close()
    assert not errors, f"script errors on the page: {errors}"


async def open_console(page: Page, fake: FakeCentral, base: str, query: str = "") -> None:
    """Load the page and wait until it is live: stream subscribed, snapshot shown."""
    await page.goto(f"{base}/{query}")
    await until(lambda: fake.subscribers >= 1, timeout=5, what="the page's live stream")
    await expect(page.locator("#updated")).to_contain_text("Snapshot")


def rows(page: Page):  # noqa: ANN201 (a Playwright Locator)
    return page.locator("#alarms li.alarm")


async def shown_ids(page: Page) -> list[str]:
    return await rows(page).evaluate_all("els => els.map(e => e.dataset.eventId)")


async def test_an_alarm_pushed_appears_within_a_second(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    fake.set_hub(hub("hub-a"))
    await open_console(page, fake, site[1])
    await expect(page.locator("#no-alarms")).to_be_visible()
    t0 = time.monotonic()
    fake.add_alarm(alarm("e1", hub="hub-a", room="kitchen", route="care",
                         cause_chain=({"id": "b1", "type": "bed.exit", "ts": iso(600)},)))  # type: ignore[arg-type]
    row = page.locator('[data-event-id="e1"]')
    # the goal: on the operator's screen within a second of reaching the central
    # (here it takes a few milliseconds; the bound is the requirement, not a benchmark)
    await expect(row).to_be_visible(timeout=1000)
    assert time.monotonic() - t0 < 1.0
    for text in ("critical", "alarm.button", "hub-a · resident R-0001", "kitchen", "care (omsorgsteam)",
                 "button-1 (alarm_button)", "bed.exit → alarm.button"):
        await expect(row).to_contain_text(text)
    await expect(page.locator("#no-alarms")).to_be_hidden()
    await expect(page.locator("#alarm-count")).to_have_text("1")
    age = row.locator(".age")
    first = await age.text_content()
    await expect(age).not_to_have_text(first or "", timeout=2500)  # the age ticks


async def test_alarms_sorted_by_priority_then_age(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    fake.add_alarm(alarm("normal-old", priority="normal", age_s=900))
    fake.add_alarm(alarm("critical-new", priority="critical", age_s=5))
    await open_console(page, fake, site[1])
    fake.add_alarm(alarm("critical-old", priority="critical", age_s=50))
    fake.add_alarm(alarm("high", priority="high", age_s=1))
    await expect(rows(page)).to_have_count(4)
    assert await shown_ids(page) == ["critical-old", "critical-new", "high", "normal-old"]


async def test_route_filter_hides_and_shows_the_right_rows(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    fake.add_alarm(alarm("n", route="nurse", age_s=30))
    fake.add_alarm(alarm("c", route="care", age_s=20))
    fake.add_alarm(alarm("a", route="any", age_s=10))
    await open_console(page, fake, site[1])
    await expect(rows(page)).to_have_count(3)

    await page.get_by_role("link", name="Care").click()
    await expect(rows(page)).to_have_count(2)
    assert sorted(await shown_ids(page)) == ["a", "c"]
    assert page.url.endswith("?route=care")
    fake.add_alarm(alarm("n2", route="nurse"))  # live, while filtered: not ours
    fake.add_alarm(alarm("c2", route="care"))
    fake.add_alarm(alarm("a2", route="any"))  # for anyone: both teams see it
    await expect(page.locator('[data-event-id="a2"]')).to_be_visible()
    assert sorted(await shown_ids(page)) == ["a", "a2", "c", "c2"]

    await page.get_by_role("link", name="Nurse").click()
    await expect(rows(page)).to_have_count(4)
    assert sorted(await shown_ids(page)) == ["a", "a2", "n", "n2"]
    await expect(page.get_by_role("link", name="Nurse")).to_have_attribute("aria-current", "page")

    await page.reload()  # the filter lives in the URL
    await expect(page.locator("#updated")).to_contain_text("Snapshot")
    await expect(rows(page)).to_have_count(4)
    assert sorted(await shown_ids(page)) == ["a", "a2", "n", "n2"]

    await page.get_by_role("link", name="All").click()
    await expect(rows(page)).to_have_count(6)
    assert "route=" not in page.url


async def test_route_filter_applies_to_device_problems(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    def problem(device: str, route: str | None) -> DeviceProblem:
        return DeviceProblem(hub="hub-a", device=device, kind="door_sensor", room="hall", problem="battery_low",
                             since=iso(60), route=route)

    fake.add_problem(problem("nurse-dev", "nurse"))
    await open_console(page, fake, site[1], "?route=care")
    shown = page.locator("#problems li")
    await expect(page.locator("#no-problems")).to_be_visible()
    fake.add_problem(problem("nurse-dev-2", "nurse"))  # live: not the care team's
    fake.add_problem(problem("care-dev", "care"))
    fake.add_problem(problem("any-dev", "any"))
    fake.add_problem(problem("old-central", None))  # from a central that sends no route: the page asks it
    await expect(shown).to_have_count(3)
    keys = await shown.evaluate_all("els => els.map(e => e.dataset.key)")
    assert sorted(keys) == ["hub-a/any-dev/battery_low", "hub-a/care-dev/battery_low", "hub-a/old-central/battery_low"]
    await page.get_by_role("link", name="All").click()
    await expect(shown).to_have_count(5)


async def test_ack_button_acks_through_the_central_and_the_row_leaves(
        page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    fake.add_alarm(alarm("e1", room="kitchen"))
    fake.add_alarm(alarm("e2", room="hall"))
    await open_console(page, fake, site[1])
    await page.locator("#operator").fill("Kari Nordmann")
    fake.ack_delay_s = 0.5  # the hub takes its time: the button says so meanwhile
    row = page.locator('[data-event-id="e1"]')
    button = row.get_by_role("button", name="Acknowledge")
    await button.tap()
    await expect(row.locator(".ack")).to_be_disabled()
    await expect(row.locator(".ack")).to_have_text("Sending…")
    await expect(row).to_have_count(0, timeout=5000)
    assert fake.acks == [("e1", "Kari Nordmann")]
    await expect(page.locator("#notices")).to_contain_text("Acknowledged alarm.button at hub-a, kitchen by Kari Nordmann: "
                                                           "the hub replied acknowledged.")
    assert await shown_ids(page) == ["e2"]


async def test_a_missed_check_in_shows_as_a_care_call_and_is_acked_like_an_alarm(
        page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    fake.add_alarm(alarm("m1", type="checkin.missed", label="missed check-in", priority="high", route="care",
                         device="rule:check_in", kind="rule", room=None, reminders=2))
    fake.add_alarm(alarm("e1"))
    await open_console(page, fake, site[1])
    row = page.locator('[data-event-id="m1"]')
    await expect(row.locator(".what")).to_have_text("missed check-in")
    await expect(row).to_contain_text("Re-alerts")
    assert await shown_ids(page) == ["e1", "m1"]  # the critical alarm first
    await page.locator("#operator").fill("Kari Nordmann")
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row).to_have_count(0, timeout=5000)
    assert fake.acks == [("m1", "Kari Nordmann")]
    await expect(page.locator("#notices")).to_contain_text("Acknowledged missed check-in at hub-a by Kari Nordmann")


async def test_ack_not_confirmed_keeps_the_row_and_says_why(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    fake.add_alarm(alarm("e1"))
    await open_console(page, fake, site[1])
    row = page.locator('[data-event-id="e1"]')
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row.locator(".reply")).to_have_text("Write your name under Operator first.")
    assert fake.acks == []
    await page.locator("#operator").fill("Ola")
    fake.ack_reply = None
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row.locator(".reply")).to_have_text("Not acknowledged: no reply from the hub within 10 s")
    await expect(row.locator(".ack")).to_be_enabled()
    assert fake.acks == [("e1", "Ola")]
    fake.ack_reply = "acknowledged"  # the operator tries again, and the hub answers
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row).to_have_count(0)


async def test_hubs_and_device_problems_live(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    fake.set_hub(hub("hub-a", "online", heartbeat_age_s=12))
    await open_console(page, fake, site[1])
    hub_a = page.locator('#hubs [data-hub="hub-a"]')
    await expect(hub_a).to_contain_text("online")
    await expect(hub_a.locator(".heartbeat")).to_contain_text(" s ago")
    fake.set_hub(hub("hub-b", "offline", reason="last will: connection lost"))
    hub_b = page.locator('#hubs [data-hub="hub-b"]')
    await expect(hub_b).to_contain_text("offline")
    await expect(hub_b).to_contain_text("last will: connection lost")
    assert await page.locator("#hubs li").evaluate_all("els => els.map(e => e.dataset.hub)") == ["hub-b", "hub-a"]
    fake.add_problem(DeviceProblem(hub="hub-a", device="mat-1", kind="bed_mat", room="bedroom", problem="battery_low",
                                   since=iso(60), detail="2.1 V"))
    problem = page.locator("#problems li")
    await expect(problem).to_contain_text("battery low")
    await expect(problem).to_contain_text("mat-1 (bed_mat)")
    fake.clear_problem("hub-a", "mat-1", "battery_low")
    await expect(problem).to_have_count(0)
    await expect(page.locator("#no-problems")).to_be_visible()


async def test_resync_rereads_the_snapshot(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    await open_console(page, fake, site[1])
    fake.alarms["quiet"] = alarm("quiet")  # changed without a change pushed: the page cannot know...
    await asyncio.sleep(0.3)
    await expect(rows(page)).to_have_count(0)
    fake.resync()  # ...until the feed says it fell behind
    await expect(page.locator('[data-event-id="quiet"]')).to_be_visible()


async def test_data_is_shown_as_text_never_as_markup(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str]) -> None:
    evil = '<img src=x onerror="document.title=\'owned\'">'
    await open_console(page, fake, site[1])
    fake.add_alarm(alarm("e1", room=evil, hub="<b>hub</b>"))
    row = page.locator('[data-event-id="e1"]')
    await expect(row).to_contain_text(evil)
    assert await row.locator("img, b").count() == 0
    assert await page.title() != "owned"


@pytest.mark.parametrize("viewport", [TABLET, {"width": 1280, "height": 800}], ids=["portrait", "landscape"])
async def test_usable_on_a_tablet(page: Page, fake: FakeCentral, site: tuple[FakeCentral, str], viewport: dict[str, int]) -> None:
    await page.set_viewport_size(viewport)  # type: ignore[arg-type]
    for i in range(6):
        fake.add_alarm(alarm(f"e{i}", hub=f"residence-with-a-long-name-{i}", room="bathroom-" + "x" * 90,
                             cause_chain=tuple({"id": f"c{k}", "type": "rule.not_back", "ts": iso()} for k in range(4))))  # type: ignore[arg-type]
    fake.set_hub(hub("hub-a", "silent", reason="no heartbeat for 212 s (level 180 s)"))
    fake.add_problem(DeviceProblem(hub="hub-a", device="dispenser-kitchen-1", kind="pill_dispenser", room="kitchen",
                                   problem="offline", since=iso(300)))
    await open_console(page, fake, site[1])
    await expect(rows(page)).to_have_count(6)
    await page.locator("#operator").fill("Kari")
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
    # every control a finger can hit: at least 44 CSS pixels each way (Apple's and WCAG's target size)
    for target in ("#alarms .ack", ".filter a", "#operator"):
        sizes = await page.locator(target).evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
        assert sizes and all(w >= 44 and h >= 44 for w, h in sizes), f"{target}: {sizes}"
    await page.locator('[data-event-id="e3"] .ack').tap()
    await expect(page.locator('[data-event-id="e3"]')).to_have_count(0)


async def test_banner_while_the_stream_is_down_and_recovery(browser: Browser) -> None:
    fake = FakeCentral()
    ctx = await browser.new_context(viewport=TABLET)
    page = await ctx.new_page()
    try:
        async with serving(fake) as base:
            port = int(base.rsplit(":", 1)[1])
            await open_console(page, fake, base)
            await expect(page.locator("#banner")).to_be_hidden()
        # the central's web server went away
        await expect(page.locator("#banner")).to_be_visible(timeout=5000)
        fake.add_alarm(alarm("while-down"))
        async with serving(fake, port=port):
            # the page reconnects by itself and re-reads what it missed
            await expect(page.locator('[data-event-id="while-down"]')).to_be_visible(timeout=10000)
            await expect(page.locator("#banner")).to_be_hidden()
    finally:
        with contextlib.suppress(Exception):
            await ctx.close()
