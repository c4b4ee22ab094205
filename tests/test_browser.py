"""The web UI in a real browser: Debian's chromium driven by Playwright, the real server.

Screenshots of the main states go to docs/screenshots/ when UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from tests.browser import DEV_KEYS, InjectedWallet, needs_chromium, open_chat, screenshot, send
from tests.chain import DEV_ACCOUNTS, Chain, networks_setting, run_chain
from tests.server import RunningServer, run_server

UI_BUILT = (Path(__file__).parent.parent / "frontend" / "app" / "dist" / "index.html").is_file()
LONG = " ".join(f"word{i}" for i in range(80))

pytestmark = [
    needs_chromium,
    pytest.mark.skipif(not UI_BUILT, reason="make test builds the UI"),
]


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[Chain]:
    async with run_chain(31337) as running:
        yield running


@pytest.fixture(scope="module")
async def app(chain: Chain) -> AsyncIterator[RunningServer]:
    networks = networks_setting(
        testnet=chain, sepolia={"chain_id": 11155111, "rpc_url": chain.rpc_url}
    )
    async with run_server(NETWORKS=networks, SCRIPTED_TOKENS_PER_SECOND="25") as running:
        yield running


async def test_two_people_chat_at_once_and_see_only_their_own(
    browser: Browser, app: RunningServer
) -> None:
    first, second = await browser.new_context(), await browser.new_context()
    try:
        alice, bob = await open_chat(first, app.url), await open_chat(second, app.url)
        await send(alice, "alice-secret-word")
        await send(bob, "bob-secret-word")
        alice_log, bob_log = alice.get_by_role("log"), bob.get_by_role("log")
        await expect(alice_log).to_contain_text("You said: alice-secret-word")
        await expect(bob_log).to_contain_text("You said: bob-secret-word")
        assert "bob-secret-word" not in await alice_log.inner_text()
        assert "alice-secret-word" not in await bob_log.inner_text()
        await screenshot(alice, "chat")
    finally:
        await first.close()
        await second.close()


async def test_a_reload_continues_the_conversation_and_the_reply_in_progress(
    context: BrowserContext, app: RunningServer
) -> None:
    page = await open_chat(context, app.url)
    await send(page, LONG)
    log = page.get_by_role("log")
    await expect(log).to_contain_text("You said: word0 word1")
    await page.reload()
    await expect(page.get_by_text("Connected")).to_be_visible()
    await expect(log).to_contain_text(LONG)  # the question is still there
    await expect(log).to_contain_text(f"You said: {LONG}", timeout=20_000)  # and the answer ends


async def test_stop_ends_a_streamed_reply(context: BrowserContext, app: RunningServer) -> None:
    page = await open_chat(context, app.url)
    await send(page, LONG)
    await expect(page.get_by_role("log")).to_contain_text("You said: word0 word1")
    await screenshot(page, "streaming")
    await page.get_by_role("button", name="Stop").click()
    await expect(page.get_by_role("log")).to_contain_text("Interrupted by user.")
    assert f"You said: {LONG}" not in await page.get_by_role("log").inner_text()
    await send(page, "after the stop")
    await expect(page.get_by_role("log")).to_contain_text("You said: after the stop")


async def test_a_network_switch_in_one_tab_leaves_another_user_alone(
    browser: Browser, app: RunningServer
) -> None:
    first, second = await browser.new_context(), await browser.new_context()
    try:
        mine, theirs = await open_chat(first, app.url), await open_chat(second, app.url)
        await mine.get_by_role("combobox", name="Network").select_option("sepolia")
        await expect(mine.get_by_role("combobox", name="Network")).to_have_value("sepolia")
        await theirs.reload()
        await expect(theirs.get_by_text("Connected")).to_be_visible()
        await expect(theirs.get_by_role("combobox", name="Network")).to_have_value("testnet")
    finally:
        await first.close()
        await second.close()


async def test_the_wallet_approves_a_proposed_transaction_on_the_dev_chain(
    context: BrowserContext, app: RunningServer, chain: Chain
) -> None:
    recipient = DEV_ACCOUNTS[2]
    before = await chain.balance(recipient)
    wallet = InjectedWallet(DEV_KEYS[0], chain.rpc)  # DEV_ACCOUNTS[0]
    await wallet.install(context)
    page = await open_chat(context, app.url)
    await page.get_by_role("button", name="Connect wallet").click()
    proposal = {
        "to": recipient,
        "value": str(10**18),
        "data": "0x",
        "description": "Pay Carol 1 ETH",
    }
    await send(page, f"/tool send_transaction_to_wallet {json.dumps(proposal)}")
    pending = page.get_by_role("region", name="Pending transaction")
    await expect(pending).to_contain_text("Pay Carol 1 ETH")
    await screenshot(page, "wallet")
    await page.get_by_role("button", name="Approve").click()

    log = page.get_by_role("log")
    await expect(log).to_contain_text(re.compile(r"Transaction sent: 0x[0-9a-f]{64}"))
    await expect(log).to_contain_text("You said: Transaction sent: 0x")  # the agent carries on
    assert len(wallet.sent) == 1
    assert (await chain.receipt(wallet.sent[0]))["status"] == "0x1"
    assert await chain.balance(recipient) == before + 10**18
    await expect(pending).to_have_count(0)
