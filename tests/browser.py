"""Debian's chromium, driven by Playwright, for the tests that need a real browser.

Also a test wallet to inject into pages (`InjectedWallet`), and the steps every browser
test takes: open the chat, send a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
# Headless as root, and quiet: this machine's closed network refuses Chromium's own calls.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="make test installs Debian's chromium"
)


@asynccontextmanager
async def launch_browser() -> AsyncIterator[Browser]:
    """A fresh headless chromium, closed afterwards."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def serve_page(html: str) -> AsyncIterator[str]:
    """Serve one HTML page from its own origin on 127.0.0.1; yields its URL.

    A real socket, not a Playwright route: chromium treats a routed page as public and
    refuses its requests to a loopback server.
    """
    body = html.encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/"


# Hardhat's dev accounts 0 and 1 (mnemonic "test test … junk"): tests/chain.py DEV_ACCOUNTS.
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)

# The page side of the wallet: an EIP-1193 provider whose requests go to the test.
WALLET = """
window.ethereum = {
  isMetaMask: false,
  request: async ({ method, params }) => {
    const answer = JSON.parse(await window.__wallet_rpc(method, JSON.stringify(params ?? [])));
    if (answer.error) {
      const error = new Error(answer.error.message);
      error.code = answer.error.code;
      throw error;
    }
    return answer.result;
  },
  on: () => {},
  removeListener: () => {},
};
"""

Rpc = Callable[..., Awaitable[Any]]


class InjectedWallet:
    """A test wallet in every page of a browser context, holding one private key.

    Like a real wallet it shares no account until the page asks (`eth_requestAccounts`),
    signs `personal_sign` with its key, and passes everything else (sending transactions
    included) to `rpc`, a node such as `Chain.rpc`, when there is one.
    """

    def __init__(self, private_key: str, rpc: Rpc | None = None) -> None:
        self.account = Account.from_key(private_key)
        self.rpc = rpc
        self.connected: list[str] = []
        self.sent: list[str] = []
        self.signed: list[str] = []

    @property
    def address(self) -> str:
        """The account's checksummed address."""
        return str(self.account.address)

    async def install(self, context: BrowserContext) -> None:
        """Put the wallet into every page the context opens from now on."""
        await context.expose_function("__wallet_rpc", self.answer)
        await context.add_init_script(WALLET)

    async def answer(self, method: str, params: str) -> str:
        """One request from the page, answered as JSON `{result}` or `{error}`."""
        args: list[Any] = json.loads(params)
        if method == "eth_requestAccounts":
            self.connected[:] = [self.address]
        if method in ("eth_requestAccounts", "eth_accounts"):
            return json.dumps({"result": self.connected})
        if method in ("wallet_switchEthereumChain", "wallet_addEthereumChain"):
            return json.dumps({"result": None})
        if method == "personal_sign":
            return json.dumps({"result": self.sign(args[0], args[1])})
        if self.rpc is None:
            return json.dumps({"error": {"code": 4200, "message": f"{method} is not supported"}})
        try:
            result = await self.rpc(method, *args)
        except Exception as error:
            return json.dumps({"error": {"code": -32000, "message": str(error)}})
        if method == "eth_sendTransaction":
            self.sent.append(result)
        return json.dumps({"result": result})

    def sign(self, message: str, address: str) -> str:
        """EIP-191 signature of a hex-encoded message, as `personal_sign` answers."""
        if address.lower() != self.address.lower():
            raise ValueError(f"this wallet holds {self.address}, not {address}")
        self.signed.append(bytes.fromhex(message.removeprefix("0x")).decode())
        signed = self.account.sign_message(encode_defunct(hexstr=message))
        return "0x" + signed.signature.hex().removeprefix("0x")


SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"


async def screenshot(page: Page, name: str) -> None:
    """Save the page as docs/screenshots/NAME.png when UPDATE_SCREENSHOTS=1 (for the README)."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled")


async def open_chat(context: BrowserContext, url: str) -> Page:
    """A new tab on the web UI at `url`, once its stream is connected."""
    page = await context.new_page()
    await page.goto(url)
    await expect(page.get_by_text("Connected")).to_be_visible()
    return page


async def send(page: Page, text: str) -> None:
    """Type a message and press Send."""
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send").click()
