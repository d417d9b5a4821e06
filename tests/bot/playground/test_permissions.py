"""The playground's switches for the bot's permissions in its channel: the functions, the
socket action, and the side bar in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.fakediscord import FakeDiscord, Permission
from bot.playground.permissions import bot_permissions, set_bot_permission
from tests.bot.playground.running import playground
from tests.bot.playground.test_page import CHROMIUM, CHROMIUM_ARGS, open_page, send
from tests.bot.playground.test_playground import Page


def allowed(fake: FakeDiscord) -> dict[str, bool]:
    return {p["name"]: p["allowed"] for p in bot_permissions(fake, fake.channel)}


def test_each_needed_permission_can_be_denied_and_allowed_again() -> None:
    """A switch changes one bit of the bot's own overwrite; the others it set stay."""
    fake = FakeDiscord()
    assert set(allowed(fake).values()) == {True}
    assert [p["name"] for p in bot_permissions(fake, fake.channel)][:2] == [
        "View Channel",
        "Send Messages",
    ]
    set_bot_permission(fake, fake.channel, "Attach Files", False)
    set_bot_permission(fake, fake.channel, "Read Message History", False)
    assert [name for name, ok in allowed(fake).items() if not ok] == [
        "Attach Files",
        "Read Message History",
    ]
    assert fake.overwrite_of(fake.channel, fake.bot_user) == (
        0,
        Permission.ATTACH_FILES | Permission.READ_MESSAGE_HISTORY,
    )
    set_bot_permission(fake, fake.channel, "Attach Files", True)
    assert [name for name, ok in allowed(fake).items() if not ok] == ["Read Message History"]
    set_bot_permission(fake, fake.channel, "Send Messages", False)  # Discord: no files then
    assert not allowed(fake)["Attach Files"]
    with pytest.raises(ValueError, match="'Administrator' is not a permission the bot needs"):
        set_bot_permission(fake, fake.channel, "Administrator", False)


async def test_the_admin_denies_the_bot_a_permission_and_everyone_sees_it(tmp_path: Path) -> None:
    """Over the socket: only mod (the admin) may switch; every page gets the new switches;
    /imagine is then refused privately naming the permission, and works again once allowed."""
    async with playground(tmp_path, wait_for_worker=False) as run, aiohttp.ClientSession() as http:
        ada, ada_state = await Page.open(http, run.url, "ada")
        mod, _ = await Page.open(http, run.url, "mod")
        assert {p["name"]: p["allowed"] for p in ada_state["bot_permissions"]} == dict.fromkeys(
            ["View Channel", "Send Messages", "Send Messages in Threads", "Attach Files",
             "Read Message History"], True
        )  # fmt: skip
        refused = await ada.ask("bot_permission", name="Attach Files", allowed=False)
        assert (
            refused["error"] == "Only a server admin can change the bot's permissions: act as mod."
        )

        denied = await mod.ask("bot_permission", name="Attach Files", allowed=False)
        assert denied["ok"] and not named(denied["permissions"])["Attach Files"]
        seen = await ada.next("permissions")
        assert not named(seen["permissions"])["Attach Files"]
        answer = await ada.ask("command", name="imagine", options={"prompt": "a door"})
        assert answer["ok"], answer
        refusal = await ada.message(lambda m: m["ephemeral"])
        assert "I don't have the **Attach Files** permission there" in refusal["content"]

        allowed = await mod.ask("bot_permission", name="Attach Files", allowed=True)
        assert named(allowed["permissions"])["Attach Files"]
        assert named((await ada.next("permissions"))["permissions"])["Attach Files"]
        unknown = await mod.ask("bot_permission", name="Administrator", allowed=True)
        assert "'Administrator' is not a permission the bot needs" in unknown["error"]
        for page in (ada, mod):
            await page.socket.close()


def named(permissions: list[dict[str, Any]]) -> dict[str, bool]:
    return {p["name"]: p["allowed"] for p in permissions}


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (`make test` installs it as root)")
async def test_the_switches_on_the_page(tmp_path: Path) -> None:
    """In Chromium: mod unticks Attach Files in the side bar, ada's tab shows it unticked
    (hers are greyed: she is no admin), and her /imagine is refused naming it."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with (
        playground(tmp_path, wait_for_worker=False) as run,
        playwright_api.async_playwright() as pw,
    ):
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await chromium.new_context()
            mod = await open_page(context, run, "mod")
            ada = await open_page(context, run, "ada")
            switch = "#perms label:has-text('Attach Files') input"
            assert await ada.locator(switch).is_disabled()
            assert await mod.locator(switch).is_checked()
            await mod.locator(switch).uncheck()
            for page in (mod, ada):
                await page.wait_for_selector(f"{switch}:not(:checked)")
            assert not run.fake.world.has(
                run.fake.bot_user, run.fake.channel, Permission.ATTACH_FILES
            )
            await send(ada, "/imagine prompt: a door")
            await ada.wait_for_selector("article.msg.ephemeral:has-text('Attach Files')")
        finally:
            await chromium.close()
