import { describe, expect, it } from "vitest";

import {
  applyEvent,
  emptyState,
  fromServerState,
  isTyping,
  type Message,
  type WalletTransaction,
} from "../src/index.js";

const agent = (content: string, is_streaming = true): Message => ({
  id: "m_1",
  sender: "agent",
  content,
  timestamp: "2026-01-01T00:00:00.000Z",
  is_streaming,
  status: is_streaming ? "streaming" : "complete",
  tool: null,
});

describe("applyEvent", () => {
  it("builds a reply from created, delta and completed events", () => {
    let state = emptyState("s");
    state = applyEvent(state, "message.created", { message: agent("") }, 1) ?? state;
    expect(isTyping(state)).toBe(true);
    state = applyEvent(state, "message.delta", { id: "m_1", delta: "Hel" }, 2) ?? state;
    state = applyEvent(state, "message.delta", { id: "m_1", delta: "lo" }, 3) ?? state;
    expect(state.messages[0]?.content).toBe("Hello");
    state = applyEvent(state, "message.completed", { message: agent("Hello", false) }, 4) ?? state;
    expect(state.messages).toHaveLength(1);
    expect(isTyping(state)).toBe(false);
    expect(state.seq).toBe(4);
  });

  it("asks for a resync when a delta names a message it does not have", () => {
    expect(applyEvent(emptyState("s"), "message.delta", { id: "m_x", delta: "?" }, 1)).toBeNull();
  });

  it("tracks the pending wallet transaction and the flags", () => {
    const tx = { id: "tx_1", simulation: null, token_call: null } as WalletTransaction;
    let state = applyEvent(emptyState("s"), "wallet.request", { tx }, 1) ?? emptyState("s");
    expect(state.wallet_tx).toBe(tx);
    state = applyEvent(state, "state", { pending_wallet_tx: '{"to":"0x"}' }, 2) ?? state;
    state = applyEvent(state, "wallet.resolved", { tx_id: "tx_other" }, 3) ?? state;
    expect(state.wallet_tx).toBe(tx);
    state = applyEvent(state, "wallet.resolved", { tx_id: "tx_1" }, 4) ?? state;
    expect(state).toMatchObject({ wallet_tx: null, pending_wallet_tx: null });
    state = applyEvent(state, "state", { is_processing: true, network: "sepolia" }, 5) ?? state;
    expect(state).toMatchObject({ is_processing: true, network: "sepolia", session_id: "s", seq: 5 });
    expect(applyEvent(state, "some.future.event", {}, 6)).toMatchObject({ seq: 6, network: "sepolia" });
  });

  it("keeps the reported wallet until a state event changes it", () => {
    const address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let state = applyEvent(emptyState("s"), "state", { wallet_address: address, wallet_chain_id: 1 }, 1);
    expect(state).toMatchObject({ wallet_address: address, wallet_chain_id: 1 });
    // Other events, and state events without the fields (an older server), leave it alone.
    state = applyEvent(state ?? emptyState("s"), "message.created", { message: agent("") }, 2);
    state = applyEvent(state ?? emptyState("s"), "state", { is_processing: true }, 3);
    expect(state).toMatchObject({ wallet_address: address, wallet_chain_id: 1, is_processing: true });
    state = applyEvent(state ?? emptyState("s"), "state", { wallet_address: null, wallet_chain_id: null }, 4);
    expect(state).toMatchObject({ wallet_address: null, wallet_chain_id: null, seq: 4 });
  });

  it("keeps a transaction's simulation, and gives an older server's transaction none", () => {
    const simulation = { ok: false, gas: null, fee_wei: null, revert_reason: "insufficient balance" };
    const simulated = { id: "tx_1", simulation, token_call: null } as WalletTransaction;
    expect(applyEvent(emptyState("s"), "wallet.request", { tx: simulated }, 1)?.wallet_tx).toBe(simulated);

    const older = { id: "tx_1" } as WalletTransaction; // sent without `simulation`
    expect(applyEvent(emptyState("s"), "wallet.request", { tx: older }, 1)?.wallet_tx).toEqual({
      id: "tx_1",
      simulation: null,
      token_call: null,
    });
    expect(applyEvent(emptyState("s"), "state", { wallet_tx: older }, 1)?.wallet_tx).toEqual({
      id: "tx_1",
      simulation: null,
      token_call: null,
    });
  });
});

describe("fromServerState", () => {
  it("fills in what an older server's state lacks", () => {
    expect(fromServerState({ seq: 3, messages: [agent("x", false)] }, "s")).toMatchObject({
      session_id: "s",
      seq: 3,
      queued: [],
      pending_wallet_tx: null,
      wallet_tx: null,
      wallet_address: null,
      wallet_chain_id: null,
    });
    const tx = { id: "tx_1" } as WalletTransaction; // sent without `simulation`
    expect(fromServerState({ seq: 4, wallet_tx: tx }, "s").wallet_tx).toEqual({
      id: "tx_1",
      simulation: null,
      token_call: null,
    });
  });

  it("takes the wallet, the simulation and the token call as sent", () => {
    const simulation = { ok: true, gas: 21000, fee_wei: "21000000000000", revert_reason: null };
    const token_call = {
      function: "transfer",
      token: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      symbol: "TST",
      decimals: 18,
      amount: "6000000000000000000",
      amount_formatted: "6",
      counterparty: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    } as const;
    const tx = { id: "tx_1", simulation, token_call } as WalletTransaction;
    const state = fromServerState({ seq: 5, wallet_address: "0xAb", wallet_chain_id: 137, wallet_tx: tx }, "s");
    expect(state).toMatchObject({ wallet_address: "0xAb", wallet_chain_id: 137 });
    expect(state.wallet_tx).toBe(tx);
  });
});
