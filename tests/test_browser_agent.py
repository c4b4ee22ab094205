"""The agent's chain work in the real UI: a question answered with real tool round trips,
and proposals the user sees simulated before signing (Debian's chromium, Playwright).

Screenshots go to docs/screenshots/ when UPDATE_SCREENSHOTS=1 (the README shows them).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser import DEV_KEYS, InjectedWallet, needs_chromium, open_chat, screenshot, send
from tests.chain import DEV_ACCOUNTS, Chain, deploy_ens, networks_setting, run_chain
from tests.fakes import FakeLLM, Reply, ToolCall
from tests.server import RunningServer, run_server

UI_BUILT = (Path(__file__).parent.parent / "frontend" / "app" / "dist" / "index.html").is_file()
REPO_MCP_CONFIG = str(Path(__file__).parent.parent / "mcp.json")
VITALIK = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"

pytestmark = [
    needs_chromium,
    pytest.mark.skipif(not UI_BUILT, reason="make test builds the UI"),
]


@pytest.fixture(scope="module")
async def mainnet() -> AsyncIterator[Chain]:
    """A local chain with mainnet's chain id, an ENS on it and vitalik.eth registered."""
    async with run_chain(1) as chain:
        yield chain


async def connect_wallet(page: Page) -> None:
    """Connect, and wait until the server knows the account (proposals simulate from it)."""
    async with page.expect_response(lambda r: r.url.endswith("/api/wallet/account")) as report:
        await page.get_by_role("button", name="Connect wallet").click()
    assert (await report.value).ok


async def test_the_eth_balance_of_an_ens_name_is_read_with_real_tool_calls(
    context: BrowserContext, mainnet: Chain
) -> None:
    ens = await deploy_ens(mainnet)
    await ens.register("vitalik.eth", VITALIK)
    await mainnet.send_transaction(to=VITALIK, value=1234 * 10**18 + 5 * 10**17)
    network = {**mainnet.network(), "ens_registry": ens.registry}
    async with FakeLLM.start("anthropic") as fake:
        fake.script(
            ToolCall("resolve_ens", {"name": "vitalik.eth"}),
            ToolCall("get_balance", {"address": VITALIK}),
            Reply(["vitalik.eth is ", VITALIK, ". Its balance on mainnet is **1234.5 ETH**."]),
        )
        async with run_server(
            NETWORKS=networks_setting(mainnet=network),
            DEFAULT_NETWORK="mainnet",
            MCP_CONFIG=REPO_MCP_CONFIG,
            **fake.env(),
        ) as app:
            page = await open_chat(context, app.url)
            await send(page, "What is the ETH balance of vitalik.eth on mainnet?")
            log = page.get_by_role("log")
            answer = "Its balance on mainnet is 1234.5 ETH"
            await expect(log).to_contain_text(answer, timeout=30_000)
            await expect(log).to_contain_text("resolve_ens")
            await expect(log).to_contain_text("get_balance")
            await screenshot(page, "ens-balance")
        resolved, balance = (request.tool_results()[-1] for request in fake.requests[1:3])
    assert VITALIK in resolved.content
    assert '"balance_eth":"1234.5"' in balance.content


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[Chain]:
    async with run_chain(31337) as running:
        yield running


@pytest.fixture(scope="module")
async def app(chain: Chain) -> AsyncIterator[RunningServer]:
    async with run_server(
        NETWORKS=networks_setting(testnet=chain), SCRIPTED_TOKENS_PER_SECOND="0"
    ) as running:
        yield running


def propose(to: str, data: str, description: str, value: int = 0) -> str:
    proposal = {"to": to, "value": str(value), "data": data, "description": description}
    return f"/tool send_transaction_to_wallet {json.dumps(proposal)}"


async def test_a_transfer_that_would_revert_is_flagged_before_signing(
    context: BrowserContext, app: RunningServer, chain: Chain
) -> None:
    token = await chain.deploy_token(supply=5 * 10**18, sender=DEV_ACCOUNTS[1])
    wallet = InjectedWallet(DEV_KEYS[1], chain.rpc)  # DEV_ACCOUNTS[1], holding 5 TST
    await wallet.install(context)
    page = await open_chat(context, app.url)
    await connect_wallet(page)
    too_much = "0xa9059cbb" + DEV_ACCOUNTS[0][2:].lower().rjust(64, "0") + f"{6 * 10**18:064x}"
    await send(page, propose(token, too_much, "Send 6 TST to account 0"))

    pending = page.get_by_role("region", name="Pending transaction")
    await expect(pending.locator(".tx-card__token")).to_have_text(
        f"Sends 6 TST to {DEV_ACCOUNTS[0]}"
    )
    warning = pending.locator(".tx-card__warning")
    await expect(warning).to_have_text(
        "This transaction would fail: TestToken: insufficient balance"
    )
    await expect(pending.get_by_role("button", name="Approve anyway")).to_be_enabled()
    await screenshot(page, "simulation")
    await pending.get_by_role("button", name="Reject").click()
    await expect(pending).to_have_count(0)
    # The agent answers the rejection before the next message (it would be busy).
    await expect(page.get_by_role("log")).to_contain_text("You said: Transaction rejected")

    await send(page, propose(DEV_ACCOUNTS[0], "0x", "Send 1 ETH to account 0", 10**18))
    await expect(pending.locator(".tx-card__fee")).to_have_text(
        re.compile(r"^≈ [0-9.]+ ETH \(21,00[01] gas\)$")
    )
    await expect(pending.locator(".tx-card__warning")).to_have_count(0)
    await expect(pending.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
