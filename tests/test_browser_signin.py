"""Sign-in and "my conversations" in the web UI: real chromium, the real server.

With AUTH=anonymous,siwe a visitor chats as a guest at once, signs in with the injected
wallet (EIP-4361, signed by `personal_sign`) and finds their conversations in the sidebar,
on reload and nowhere else. Without sign-in (AUTH=none) the sidebar lists what this
browser made.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_account import Account
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.browser import DEV_KEYS, InjectedWallet, needs_chromium, screenshot
from tests.chain import DEV_ACCOUNTS
from tests.server import RunningServer, run_server

UI_BUILT = (Path(__file__).parent.parent / "frontend" / "app" / "dist" / "index.html").is_file()

pytestmark = [
    needs_chromium,
    pytest.mark.skipif(not UI_BUILT, reason="make test builds the UI"),
]


@pytest.fixture(scope="module")
async def app() -> AsyncIterator[RunningServer]:
    async with run_server(
        AUTH="anonymous,siwe",
        AUTH_SECRET="browser-signin-tests-" + "x" * 20,
        RATE_LIMIT_AUTH="",  # every page signs in from 127.0.0.1
        SCRIPTED_TOKENS_PER_SECOND="200",
    ) as running:
        yield running


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    """Browser contexts a test opens (each a separate browser profile), closed afterwards."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        await context.close()


async def open_app(
    browser: Browser, contexts: list[BrowserContext], url: str, key: str | None = None
) -> Page:
    """A new profile (with a wallet holding `key`, if given) showing the app, connected."""
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    contexts.append(context)
    if key is not None:
        await InjectedWallet(key).install(context)
    page = await context.new_page()
    await page.goto(url)
    await expect(page.get_by_role("status", name="Connection")).to_have_text("Connected")
    return page


async def sign_in_with_ethereum(page: Page, address: str) -> None:
    await page.get_by_test_id("sign-in-ethereum").click()
    who = page.get_by_test_id("signed-in-as")
    await expect(who).to_have_attribute("data-principal", f"eth:{address}")
    await expect(who).to_contain_text(f"{address[:6]}…{address[-4:]}")
    await expect(page.get_by_test_id("sign-in-ethereum")).to_have_count(0)
    await expect(page.get_by_role("status", name="Connection")).to_have_text("Connected")


async def chat(page: Page, text: str) -> None:
    """Send a message and wait for the (scripted) reply."""
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_role("log")).to_contain_text(f"You said: {text}")


def items(page: Page) -> Locator:
    """The sidebar's conversations."""
    return page.get_by_test_id("sidebar").get_by_test_id("session-item")


def item(page: Page, title: str) -> Locator:
    """The sidebar's conversation titled `title`."""
    return items(page).filter(has=page.get_by_test_id("session-title").get_by_text(title))


def test_the_dev_keys_are_the_dev_accounts() -> None:
    assert [Account.from_key(key).address for key in DEV_KEYS] == list(DEV_ACCOUNTS[:2])


async def test_conversations_follow_the_ethereum_account(
    browser: Browser, contexts: list[BrowserContext], app: RunningServer
) -> None:
    page = await open_app(browser, contexts, app.url, DEV_KEYS[0])
    await expect(page.get_by_test_id("signed-in-as")).to_contain_text("Guest")
    await screenshot(page, "guest")
    await sign_in_with_ethereum(page, DEV_ACCOUNTS[0])

    await chat(page, "first question about gas")
    await expect(item(page, "first question about gas")).to_have_count(1)
    await page.get_by_test_id("new-chat").click()
    log = page.get_by_role("log")
    await expect(log).not_to_contain_text("first question about gas")
    await chat(page, "second question about blocks")
    await expect(items(page)).to_have_count(2)

    await page.reload()
    await expect(page.get_by_test_id("signed-in-as")).to_have_attribute(
        "data-principal", f"eth:{DEV_ACCOUNTS[0]}"
    )
    titles = page.get_by_test_id("sidebar").get_by_test_id("session-title")
    await expect(titles).to_have_text(["second question about blocks", "first question about gas"])

    await item(page, "first question about gas").get_by_role("link").click()
    await expect(log).to_contain_text("You said: first question about gas")
    await expect(log).not_to_contain_text("second question")
    current = item(page, "first question about gas").get_by_role("link")
    await expect(current).to_have_attribute("aria-current", "page")
    await item(page, "second question about blocks").get_by_role("link").click()
    await expect(log).to_contain_text("You said: second question about blocks")
    await expect(log).not_to_contain_text("first question")
    await screenshot(page, "signin")

    # Someone else, with another account, sees none of it.
    other = await open_app(browser, contexts, app.url, DEV_KEYS[1])
    await sign_in_with_ethereum(other, DEV_ACCOUNTS[1])
    await expect(other.get_by_test_id("sidebar")).to_contain_text("will show up here")
    await expect(items(other)).to_have_count(0)


async def test_a_guest_keeps_the_conversation_when_signing_in(
    browser: Browser, contexts: list[BrowserContext], app: RunningServer
) -> None:
    key = "0x" + "42" * 32
    address = Account.from_key(key).address
    page = await open_app(browser, contexts, app.url, key)
    await chat(page, "asked as a guest")
    await expect(item(page, "asked as a guest")).to_have_count(1)
    await sign_in_with_ethereum(page, address)
    await expect(item(page, "asked as a guest")).to_have_count(1)
    await expect(page.get_by_role("log")).to_contain_text("You said: asked as a guest")


async def test_rename_delete_and_sign_out(
    browser: Browser, contexts: list[BrowserContext], app: RunningServer
) -> None:
    key = "0x" + "43" * 32
    page = await open_app(browser, contexts, app.url, key)
    await sign_in_with_ethereum(page, Account.from_key(key).address)
    await chat(page, "keep me around")
    await page.get_by_test_id("new-chat").click()
    await chat(page, "throw me away")

    await item(page, "keep me around").get_by_test_id("rename-session").click()
    field = page.get_by_role("textbox", name="Conversation title")
    await field.fill("Kept, renamed")
    await field.press("Enter")
    await expect(item(page, "Kept, renamed")).to_have_count(1)
    await page.reload()
    await expect(item(page, "Kept, renamed")).to_have_count(1)

    # Deleting the conversation in view switches to another one.
    await item(page, "throw me away").get_by_test_id("delete-session").click()
    await expect(items(page)).to_have_count(1)
    log = page.get_by_role("log")
    await expect(log).to_contain_text("You said: keep me around")
    await expect(item(page, "Kept, renamed").get_by_role("link")).to_have_attribute(
        "aria-current", "page"
    )

    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("signed-in-as")).to_contain_text("Guest")
    await expect(items(page)).to_have_count(0)
    await expect(log).not_to_contain_text("keep me around")


async def test_signing_out_in_one_tab_signs_out_the_other(
    browser: Browser, contexts: list[BrowserContext], app: RunningServer
) -> None:
    key = "0x" + "44" * 32
    address = Account.from_key(key).address
    page = await open_app(browser, contexts, app.url, key)
    await sign_in_with_ethereum(page, address)
    await chat(page, "written before signing out")
    other = await page.context.new_page()
    await other.goto(app.url)
    who = other.get_by_test_id("signed-in-as")
    await expect(who).to_have_attribute("data-principal", f"eth:{address}")
    await expect(other.get_by_role("log")).to_contain_text("You said: written before signing out")

    await other.get_by_test_id("sign-out").click()
    for tab in (other, page):
        await expect(tab.get_by_test_id("signed-in-as")).to_contain_text("Guest")
        await expect(items(tab)).to_have_count(0)
        await expect(tab.get_by_role("log")).not_to_contain_text("written before")
    await chat(page, "now as a guest")


async def test_without_sign_in_the_sidebar_lists_this_browsers_conversations(
    browser: Browser, contexts: list[BrowserContext]
) -> None:
    async with run_server(SCRIPTED_TOKENS_PER_SECOND="200") as plain:
        page = await open_app(browser, contexts, plain.url)
        await expect(page.get_by_test_id("signed-in-as")).to_have_count(0)
        await expect(page.get_by_test_id("sign-in-ethereum")).to_have_count(0)
        await chat(page, "local one")
        await page.get_by_test_id("new-chat").click()
        await chat(page, "local two")
        await page.reload()
        titles = page.get_by_test_id("sidebar").get_by_test_id("session-title")
        await expect(titles).to_have_text(["local two", "local one"])
        await item(page, "local one").get_by_role("link").click()
        log = page.get_by_role("log")
        await expect(log).to_contain_text("You said: local one")
        await expect(log).not_to_contain_text("local two")
        # Another browser profile has its own list.
        other = await open_app(browser, contexts, plain.url)
        await expect(items(other)).to_have_count(0)
        await expect(other.get_by_role("log")).not_to_contain_text(re.compile("local"))
