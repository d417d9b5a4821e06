"""The playground page in a real headless Chromium (the system's; never a downloaded one),
over the fake Discord with the real bot and a tiny worker. One playground and one browser
serve the whole module; each test opens its own tabs."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.fakediscord import Message
from tests.bot.playground.running import Running, playground

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Set DOORWAYS_SCREENSHOTS=DIR to keep a screenshot of the page the first test saw.
SCREENSHOTS = (
    Path(os.environ["DOORWAYS_SCREENSHOTS"]) if os.environ.get("DOORWAYS_SCREENSHOTS") else None
)
NOT_RUNNING = "The playground is not running — start it with make run."
AT_BOTTOM = (
    "(s => s.scrollHeight - s.scrollTop - s.clientHeight < 8)(document.getElementById('messages'))"
)
PICTURES_LOADED = (
    "[...document.querySelectorAll('#list img')].every(i => i.complete && i.naturalWidth)"
)
PICTURE = "img:not([alt='preview.png'])"  # a result, not a status message's preview
RESULT_PICTURES = f"article.msg {PICTURE}"

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium here (`make test` installs it as root)"
    ),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with playground(tmp_path_factory.mktemp("playground")) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as pw:
        # Playwright gives it a fresh --user-data-dir.
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_page(context: Any, run: Running, user: str, height: int = 900) -> Any:
    page = await context.new_page()
    await page.set_viewport_size({"width": 1100, "height": height})
    await page.goto(f"{run.url}/?user={user}")
    await page.wait_for_selector("#bot-status.online")
    return page


async def in_view(page: Any, message_id: str) -> bool:
    """Whether the message shows in the channel's visible part (not scrolled away)."""
    return bool(
        await page.evaluate(
            """id => { const m = document.getElementById('m' + id).getBoundingClientRect();
            const view = document.getElementById('messages').getBoundingClientRect();
            return m.bottom > view.top && m.top < view.bottom; }""",
            message_id,
        )
    )


async def send(page: Any, text: str) -> None:
    """Type a line into the composer and press Enter."""
    await page.locator("#input").fill(text)
    await page.locator("#input").press("Enter")


async def paint(run: Running, user: str) -> Message:
    """/entrance as ``user`` through the fake's driver; its result post, once there."""
    person = run.playground.people[user]
    handle = await run.fake.slash(person, run.fake.channel, "entrance", {"realms": "sky | sea"})
    await handle.wait_response(5)
    status = handle.original
    assert status is not None
    return await run.fake.wait_for_message(
        run.fake.channel,
        lambda m: m.reference_id == status.id and bool(m.attachments),
        timeout=60,
    )


async def test_paint_then_dm_links_and_escaped_prompt(run: Running, browser: Any) -> None:
    """/entrance from the composer paints a picture; the prompt's * and ` show as typed; 📋
    shows the call string; ✉️ sends it by DM, which the Direct messages entry shows; the DM's
    link and /history's link lead to the picture on the page."""
    context = await browser.new_context()
    page = await open_page(context, run, "ada")
    assert "stand-in" in await page.inner_text("#banner")
    await send(page, "/entrance heaven *bright* | hell `x`")
    status = page.locator("article.msg", has_text="entrance to the heaven")
    await status.first.wait_for(timeout=10_000)
    shown = await status.first.locator(".content").inner_text()
    assert "the heaven *bright* realm" in shown and "the hell `x` realm" in shown, shown
    pictured = page.locator("article.msg", has=page.locator(PICTURE))
    await pictured.first.wait_for(timeout=60_000)
    result_id = await pictured.first.get_attribute("data-id")
    result = page.locator(f"#m{result_id}")

    await result.locator("button.button", has_text="📋").click()
    call = page.locator("article.msg.ephemeral", has_text="doorways generate")
    await call.first.wait_for(timeout=10_000)
    assert "heaven" in await call.first.inner_text()
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=False)

    await result.hover()
    await result.locator(".tools button[title='Add Reaction']").click()
    await result.locator("button[title='react with ✉️']").click()
    await page.wait_for_selector("#dm-unread:not([hidden])", timeout=20_000)
    assert int(await page.inner_text("#dm-unread")) >= 1
    await page.click("#to-dm")
    assert "Direct messages" in await page.inner_text("#top")
    dm_picture = page.locator("#list article.msg img")
    await dm_picture.first.wait_for(timeout=10_000)
    assert await page.locator("#dm-unread").is_hidden()
    assert await page.locator("#input").is_disabled()

    to_result = page.locator("#list a[data-jump]")  # "from <the result's jump_url>"
    assert await to_result.first.get_attribute("href") == f"#m{result_id}"
    assert await to_result.first.inner_text() == "#general › message"
    await to_result.first.click()
    await page.wait_for_selector(f"#m{result_id}.highlight")
    assert "general" in await page.inner_text("#top") and await in_view(page, result_id)

    await send(page, "/history")
    listed = page.locator("article.msg.ephemeral", has_text="Your last")
    await listed.wait_for(timeout=10_000)
    link = listed.locator("a", has_text="#1")
    assert await link.get_attribute("href") == f"#m{result_id}"
    await page.wait_for_selector(f"#m{result_id}:not(.highlight)")
    await link.click()
    await page.wait_for_selector(f"#m{result_id}.highlight")
    assert await in_view(page, result_id)
    await context.close()


async def test_a_grid_with_its_pick_buttons(run: Running, browser: Any) -> None:
    """/entrance … count:4 from the composer shows the grid with a button 🖼 1-4 per picture
    (and 🔀 1-4); pressing 🖼 2 posts that picture alone, half the grid's width, with the
    call string that repaints it."""
    context = await browser.new_context()
    page = await open_page(context, run, "ada")
    await send(page, "/entrance moon | sun count:4")
    grid = page.locator("article.msg", has=page.locator("button.button", has_text="🖼 4"))
    await grid.first.wait_for(timeout=60_000)
    buttons = await grid.first.locator("button.button").all_inner_texts()
    assert [b for b in buttons if b.startswith("🖼")] == ["🖼 1", "🖼 2", "🖼 3", "🖼 4"]
    assert [b for b in buttons if b.startswith("🔀")] == ["🔀 1", "🔀 2", "🔀 3", "🔀 4"]
    grid_picture = grid.first.locator(PICTURE)
    await page.wait_for_function(PICTURES_LOADED, timeout=10_000)
    grid_width = await grid_picture.evaluate("i => i.naturalWidth")

    await grid.first.locator("button.button", has_text="🖼 2").click()
    alone = page.locator("article.msg", has_text="--count 4 --index 2", has=page.locator(PICTURE))
    await alone.first.wait_for(timeout=30_000)
    await page.wait_for_function(PICTURES_LOADED, timeout=10_000)
    width = await alone.first.locator(PICTURE).evaluate("i => i.naturalWidth")
    assert 2 * width == grid_width
    assert "moon" in await alone.first.inner_text()
    own = await alone.first.locator("button.button").all_inner_texts()
    assert not [b for b in own if b.startswith("🖼")] and any("🎲" in b for b in own)
    await context.close()


async def test_subcommands_as_mod_and_as_a_member(run: Running, browser: Any) -> None:
    """mod is offered /admin and its subcommands and runs `/admin status` and `/nightly run`,
    seeing "sending…" meanwhile; ben is not offered /admin, and typing it anyway says in
    words which permission it needs."""
    context = await browser.new_context()
    mod = await open_page(context, run, "mod")
    await mod.locator("#input").fill("/adm")
    assert "/admin" in await mod.inner_text("#popup")
    await mod.locator("#input").press("Tab")
    assert await mod.input_value("#input") == "/admin "
    offered = await mod.inner_text("#popup")
    assert "/admin status" in offered and "/admin pause" in offered, offered
    await mod.locator("#input").press_sequentially("stat")
    await mod.evaluate(
        """window.sendingSeen = [];
        new MutationObserver(() => window.sendingSeen.push(document.getElementById('sending')
            .textContent)).observe(document.getElementById('sending'),
            {childList: true, characterData: true, subtree: true, attributes: true});"""
    )
    await mod.locator("#input").press("Enter")  # picks "status" from the popup
    assert await mod.input_value("#input") == "/admin status "
    await mod.locator("#input").press("Enter")
    await mod.locator("article.msg.ephemeral", has_text="Painter:").wait_for(timeout=10_000)
    assert "Sending /admin status…" in await mod.evaluate("window.sendingSeen")
    assert await mod.locator("#sending").is_hidden()
    await send(mod, "/nightly run")  # mod is an admin of the home server: the operator
    await mod.locator("article.msg.ephemeral", has_text="No task folder").wait_for(timeout=10_000)
    await mod.locator("#input").fill("/admin quota target:")
    assert "ben" in await mod.inner_text("#popup")

    ben = await open_page(context, run, "ben")
    await ben.locator("#input").fill("/")
    offered = await ben.inner_text("#popup")
    assert "/entrance" in offered and "/admin" not in offered and "/nightly" not in offered
    await send(ben, "/admin status")
    refusal = ben.locator("article.msg.ephemeral", has_text="Manage Server")
    await refusal.wait_for(timeout=5_000)
    assert "/admin needs the Manage Server permission, which ben does not have" in (
        await refusal.inner_text()
    )
    assert "Painter:" not in await ben.inner_text("#list")
    await context.close()


async def test_following_the_bottom_and_notices_in_time(run: Running, browser: Any) -> None:
    """A fresh tab starts at the bottom once its pictures have loaded; a notice of the page
    sits in time order among the bot's answers; scrolled up, a new message keeps the place
    and shows the "new messages" bar, which jumps to the bottom; at the bottom, new messages
    and pictures keep it there."""
    if not any(m.attachments for m in run.fake.messages(run.fake.channel)):
        await paint(run, "cy")
    context = await browser.new_context()  # nothing cached: the pictures load late
    page = await open_page(context, run, "ada", height=420)
    await page.wait_for_function(PICTURES_LOADED, timeout=10_000)
    assert await page.evaluate(AT_BOTTOM)

    await send(page, "hello")
    notice = page.locator("article.msg", has_text="no plain chat")
    await notice.wait_for()
    await send(page, "/quota")
    answer = page.locator("article.msg.ephemeral", has_text="Waiting or painting now")
    await answer.wait_for(timeout=10_000)
    order = await page.evaluate(
        "[...document.querySelectorAll('#list article')].map(a => a.textContent)"
    )
    assert [i for i, t in enumerate(order) if "no plain chat" in t] < [
        i for i, t in enumerate(order) if "Waiting or painting now" in t
    ]
    assert await page.evaluate(AT_BOTTOM)

    assert await page.evaluate(
        "(s => s.scrollHeight > s.clientHeight + 200)(document.getElementById('messages'))"
    )
    await page.evaluate("document.getElementById('messages').scrollTop = 0")
    await page.wait_for_timeout(100)
    count = await page.locator("#list article").count()
    painted = asyncio.create_task(paint(run, "ben"))
    await page.wait_for_function(
        f"document.querySelectorAll('#list article').length > {count}", timeout=10_000
    )
    assert await page.evaluate("document.getElementById('messages').scrollTop") == 0
    await page.locator("#jump").wait_for(state="visible")
    await page.click("#jump")
    assert await page.evaluate(AT_BOTTOM)
    assert await page.locator("#jump").is_hidden()

    await painted  # its preview edits and its picture arrive while at the bottom
    await page.locator(RESULT_PICTURES).nth(1).wait_for(timeout=10_000)
    await page.wait_for_function(PICTURES_LOADED, timeout=10_000)
    await page.wait_for_timeout(100)
    assert await page.evaluate(AT_BOTTOM)
    await context.close()


async def test_seven_tabs_at_once(
    run: Running, browser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Seven tabs of one browser (which opens at most six connections to a host) all follow
    the channel and get their answers; reloading and closing tabs logs nothing."""
    caplog.set_level(logging.WARNING)
    context = await browser.new_context()
    people = ["ada", "ben", "cy", "mod", "ada", "ben", "cy"]
    pages = [await open_page(context, run, name) for name in people]

    async def quota(page: Any, nth: int) -> None:
        await send(page, "/quota")
        answers = page.locator("article.msg.ephemeral", has_text="Waiting or painting now")
        await answers.nth(nth).wait_for(timeout=10_000)

    await asyncio.gather(*(quota(page, 0) for page in pages))
    await asyncio.gather(*(page.reload() for page in pages[:2]))
    for page in pages[4:]:
        await page.close()
    await asyncio.gather(*(quota(page, 0 if i < 2 else 1) for i, page in enumerate(pages[:4])))
    await context.close()
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_the_page_when_the_server_stops(run: Running, browser: Any) -> None:
    """A bot too slow to answer is named; with the playground stopped the page says how to
    start it, and so does sending; when it is back the page picks up again."""
    context = await browser.new_context()
    page = await open_page(context, run, "cy")
    run.playground.response_timeout = 0.0  # the bot has no time at all to answer
    try:
        await send(page, "/quota")
        await page.locator("article.msg", has_text="Doorways did not respond.").wait_for()
    finally:
        run.playground.response_timeout = 3.5

    await run.runner.cleanup()
    await page.locator("#offline").wait_for(state="visible")
    assert NOT_RUNNING in await page.inner_text("#offline")
    assert "offline" in await page.inner_text("#bot-status")
    await send(page, "/quota")
    await page.locator("article.msg", has_text=NOT_RUNNING).wait_for()
    assert "Failed to fetch" not in await page.inner_text("#list")

    run.runner = await run.playground.serve("127.0.0.1", run.port)
    await page.locator("#offline").wait_for(state="hidden", timeout=15_000)
    await page.wait_for_selector("#bot-status.online")
    answers = page.locator("article.msg.ephemeral", has_text="Waiting or painting now")
    before = await answers.count()
    await send(page, "/quota")
    await answers.nth(before).wait_for(timeout=10_000)
    await context.close()
