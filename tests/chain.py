"""A real local chain for tests: Hardhat 2's `hardhat node` on 127.0.0.1, an ephemeral port.

`async with run_chain(chain_id=31338) as chain:` starts one and awaits its readiness line;
Hardhat's dev accounts are unlocked, so `chain.send_transaction(...)` needs no signing
library, and `chain.deploy_token(...)` deploys the test ERC-20 (compiled once per test
session by solc-js through tests/chain/compile.js). The npm packages come from
`npm ci --prefix tests/chain`, which `make test` runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from tests.server import free_port

CHAIN_DIR = Path(__file__).parent / "chain"
READY_LINE = b"Started HTTP and WebSocket JSON-RPC server at"

# Hardhat's default dev accounts (mnemonic "test test ... junk"), 10000 ETH each at start.
DEV_ACCOUNTS = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
)
DEV_BALANCE_WEI = 10_000 * 10**18

_compiled: dict[str, Any] | None = None
_compile_lock = asyncio.Lock()


class RpcFailed(Exception):
    """The chain answered a JSON-RPC request with an error."""


@dataclass
class Chain:
    """A running chain and what tests need to reach it."""

    rpc_url: str
    chain_id: int
    process: asyncio.subprocess.Process
    log: deque[bytes] = field(default_factory=lambda: deque(maxlen=200))
    _http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=15.0))

    async def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC request's result; `RpcFailed` when the node answers with an error."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        answer = (await self._http.post(self.rpc_url, json=body)).json()
        if "error" in answer:
            raise RpcFailed(f"{method}: {answer['error']}")
        return answer["result"]

    async def block_number(self) -> int:
        """The latest block's number."""
        return int(await self.rpc("eth_blockNumber"), 16)

    async def balance(self, address: str) -> int:
        """An address's balance in wei at the latest block."""
        return int(await self.rpc("eth_getBalance", address, "latest"), 16)

    async def send_transaction(
        self,
        *,
        to: str | None = None,
        value: int = 0,
        data: str = "0x",
        sender: str = DEV_ACCOUNTS[0],
    ) -> str:
        """Send from an unlocked dev account; the node mines it at once. Returns the hash."""
        tx: dict[str, str] = {"from": sender, "value": hex(value), "data": data}
        if to is not None:
            tx["to"] = to
        tx_hash: str = await self.rpc("eth_sendTransaction", tx)
        return tx_hash

    async def receipt(self, tx_hash: str) -> dict[str, Any]:
        """The receipt of a transaction this chain has mined (Hardhat mines on send)."""
        receipt: dict[str, Any] | None = await self.rpc("eth_getTransactionReceipt", tx_hash)
        assert receipt is not None, f"{tx_hash} was not mined"
        return receipt

    async def deploy_token(
        self,
        name: str = "Test Token",
        symbol: str = "TST",
        decimals: int = 18,
        supply: int = 1_000_000 * 10**18,
        sender: str = DEV_ACCOUNTS[0],
    ) -> str:
        """Deploy TestToken (the sender gets the whole supply); returns its checksummed address."""
        contract = (await compiled_contracts())["TestToken"]
        arguments = encode(
            ["string", "string", "uint8", "uint256"], [name, symbol, decimals, supply]
        )
        tx_hash = await self.send_transaction(
            data=contract["bytecode"] + arguments.hex(), sender=sender
        )
        receipt = await self.receipt(tx_hash)
        assert receipt["status"] == "0x1", receipt
        return str(to_checksum_address(receipt["contractAddress"]))

    async def deploy(
        self,
        contract_name: str,
        types: Sequence[str] = (),
        values: Sequence[Any] = (),
        *,
        sender: str = DEV_ACCOUNTS[0],
    ) -> str:
        """Deploy a compiled test contract with these constructor arguments; its address."""
        contract = (await compiled_contracts())[contract_name]
        arguments = encode(list(types), list(values))
        tx_hash = await self.send_transaction(
            data=contract["bytecode"] + arguments.hex(), sender=sender
        )
        receipt = await self.receipt(tx_hash)
        assert receipt["status"] == "0x1", receipt
        return str(to_checksum_address(receipt["contractAddress"]))

    async def deploy_code(self, creation_code: bytes, *, sender: str = DEV_ACCOUNTS[0]) -> str:
        """Deploy raw creation code (e.g. an EIP-1167 clone's, built by hand); its address."""
        tx_hash = await self.send_transaction(data="0x" + creation_code.hex(), sender=sender)
        receipt = await self.receipt(tx_hash)
        assert receipt["status"] == "0x1", receipt
        return str(to_checksum_address(receipt["contractAddress"]))

    async def transact(
        self, to: str, signature: str, *values: Any, sender: str = DEV_ACCOUNTS[0]
    ) -> None:
        """Call `signature` (flat types only, e.g. "setAddr(bytes32,address)") in a mined
        transaction that must succeed."""
        types = [kind for kind in signature[signature.index("(") + 1 : -1].split(",") if kind]
        data = keccak(text=signature)[:4] + encode(types, list(values))
        receipt = await self.receipt(
            await self.send_transaction(to=to, data="0x" + data.hex(), sender=sender)
        )
        assert receipt["status"] == "0x1", receipt

    def network(self) -> dict[str, Any]:
        """This chain as one entry of the NETWORKS setting."""
        return {"chain_id": self.chain_id, "rpc_url": self.rpc_url}

    def log_text(self) -> str:
        """The node's recent output."""
        return b"".join(self.log).decode(errors="replace")

    async def close(self) -> None:
        """Close the test's HTTP client (the process is stopped by `run_chain`)."""
        await self._http.aclose()


@dataclass(frozen=True)
class Ens:
    """A test ENS on a chain: TestEnsRegistry and one TestEnsResolver, both run by `admin`."""

    chain: Chain
    registry: str
    resolver: str
    admin: str

    async def register(self, name: str, address: str) -> None:
        """Point `name` at `address` (the forward record)."""
        node = await self._claim(name)
        await self.chain.transact(
            self.resolver, "setAddr(bytes32,address)", node, address, sender=self.admin
        )

    async def set_primary_name(self, address: str, name: str) -> None:
        """Write `name` into `address`'s reverse record, as its reverse registrar would."""
        node = await self._claim(f"{address[2:].lower()}.addr.reverse")
        await self.chain.transact(
            self.resolver, "setName(bytes32,string)", node, name, sender=self.admin
        )

    async def _claim(self, name: str) -> bytes:
        """Make `admin` own `name` and every parent, with the resolver set; its node."""
        node = bytes(32)
        for label in reversed(name.split(".")):
            label_hash = keccak(text=label)
            await self.chain.transact(
                self.registry,
                "setSubnodeOwner(bytes32,bytes32,address)",
                node,
                label_hash,
                self.admin,
                sender=self.admin,
            )
            node = keccak(node + label_hash)
        await self.chain.transact(
            self.registry, "setResolver(bytes32,address)", node, self.resolver, sender=self.admin
        )
        return node


async def deploy_ens(chain: Chain, admin: str = DEV_ACCOUNTS[0]) -> Ens:
    """A fresh test ENS (registry and resolver) whose root `admin` owns."""
    registry = await chain.deploy("TestEnsRegistry", sender=admin)
    resolver = await chain.deploy("TestEnsResolver", ["address"], [registry], sender=admin)
    return Ens(chain=chain, registry=registry, resolver=resolver, admin=admin)


def erc20_transfer(to: str, amount: int) -> bytes:
    """The calldata of ERC-20 `transfer(to, amount)`."""
    return keccak(text="transfer(address,uint256)")[:4] + encode(
        ["address", "uint256"], [to, amount]
    )


def networks_setting(**networks: Chain | dict[str, Any]) -> str:
    """The NETWORKS value (JSON) naming these chains (or raw entries, e.g. a dead node)."""
    return json.dumps(
        {
            name: value.network() if isinstance(value, Chain) else value
            for name, value in networks.items()
        }
    )


async def compiled_contracts() -> dict[str, Any]:
    """{"TestToken": {"abi", "bytecode"}}, compiled by solc-js once per test session."""
    global _compiled
    async with _compile_lock:
        if _compiled is None:
            _require_node_modules()
            process = await asyncio.create_subprocess_exec(
                "node",
                str(CHAIN_DIR / "compile.js"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            if process.returncode != 0:
                raise RuntimeError(f"compiling the test contracts failed:\n{err.decode()}")
            _compiled = json.loads(out)
        return _compiled


def _require_node_modules() -> None:
    if not (CHAIN_DIR / "node_modules" / "hardhat").is_dir():
        raise RuntimeError(
            "the test chain's npm packages are missing: run `make test`, or "
            "`npm ci --prefix tests/chain`"
        )


@asynccontextmanager
async def run_chain(chain_id: int = 31337, *, timeout: float = 60.0) -> AsyncIterator[Chain]:
    """Start `hardhat node` with this chain id, wait until it listens, stop it afterwards."""
    _require_node_modules()
    port = free_port()
    environment = {
        **os.environ,
        "CHAIN_ID": str(chain_id),
        "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true",
        "CI": "true",
    }
    process = await asyncio.create_subprocess_exec(
        "npx",
        "hardhat",
        "node",
        "--hostname",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=CHAIN_DIR,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # npx starts node as a child: stop the whole group
    )
    chain = Chain(rpc_url=f"http://127.0.0.1:{port}", chain_id=chain_id, process=process)
    assert process.stdout is not None
    stdout = process.stdout

    async def ready() -> None:
        while line := await stdout.readline():
            chain.log.append(line)
            if READY_LINE in line:
                return
        raise RuntimeError(f"hardhat node exited before listening:\n{chain.log_text()}")

    # The node logs every request; reading on keeps its pipe from filling up.
    async def drain() -> None:
        while line := await stdout.readline():
            chain.log.append(line)

    drainer: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(ready(), timeout)
        drainer = asyncio.create_task(drain())
        yield chain
    finally:
        await _stop(process, drainer)
        await chain.close()


async def _stop(process: asyncio.subprocess.Process, drainer: asyncio.Task[None] | None) -> None:
    """SIGTERM the chain's process group (npx and node), SIGKILL it if it lingers."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    ends: list[Any] = [process.wait()] + ([drainer] if drainer is not None else [])
    try:
        await asyncio.wait_for(asyncio.gather(*ends), timeout=10)
    except TimeoutError:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


@asynccontextmanager
async def silent_node() -> AsyncIterator[str]:
    """An RPC URL whose server accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def evm_server_over_http(networks: str) -> AsyncIterator[str]:
    """`python -m chatbot.tools.evm --transport http` on a free port; yields its /mcp URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbot.tools.evm",
        "--transport",
        "http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env={**os.environ, "NETWORKS": networks},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr
    log: list[bytes] = []

    async def ready() -> None:
        while line := await stderr.readline():
            log.append(line)
            if b"Uvicorn running on" in line:
                return
        raise RuntimeError("the EVM server exited:\n" + b"".join(log).decode(errors="replace"))

    async def drain() -> None:
        while line := await stderr.readline():
            log.append(line)

    drainer: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(ready(), timeout=30)
        drainer = asyncio.create_task(drain())
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=10)
        if drainer is not None:
            await drainer
