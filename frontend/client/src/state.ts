/**
 * The session state and the pure reducer that applies the server's typed events to it.
 * Every change returns a new object (and a new `messages` array when messages changed),
 * so UIs can compare by reference.
 */
import type { Message, SessionState, WalletTransaction } from "./types.js";

/** The state of a session nothing is known about yet. */
export function emptyState(sessionId: string): SessionState {
  return {
    session_id: sessionId,
    seq: 0,
    messages: [],
    older_messages: 0,
    is_processing: false,
    is_loading: false,
    is_connecting_mcp: false,
    missing_api_key: false,
    network: "",
    wallet_address: null,
    wallet_chain_id: null,
    pending_wallet_tx: null,
    wallet_tx: null,
    queued: [],
    title: null,
  };
}

/** A full state from the server (a `snapshot` event or a POST answer), with defaults filled in. */
export function fromServerState(data: Partial<SessionState>, sessionId: string): SessionState {
  return {
    ...emptyState(sessionId),
    ...data,
    messages: Array.isArray(data.messages) ? data.messages : [],
    queued: Array.isArray(data.queued) ? data.queued : [],
    wallet_tx: fromServerTx(data.wallet_tx),
  };
}

/**
 * A pending transaction as sent, with `simulation` and `token_call` null when an older
 * server left them out (the same object when nothing is missing, so UIs comparing by
 * reference see no change).
 */
function fromServerTx(tx: WalletTransaction | null | undefined): WalletTransaction | null {
  if (tx === null || tx === undefined) return null;
  if (Object.hasOwn(tx, "simulation") && Object.hasOwn(tx, "token_call")) return tx;
  return { ...tx, simulation: tx.simulation ?? null, token_call: tx.token_call ?? null };
}

/** True while an agent text reply is streaming (tool calls do not count as typing). */
export function isTyping(state: SessionState): boolean {
  return state.messages.some((m) => m.sender === "agent" && m.is_streaming && m.tool === null);
}

/**
 * Applies one typed delta event (not `snapshot`) numbered `seq`. Returns the new state,
 * or `null` when the event cannot be applied to this state (a delta for a message we do
 * not have): the caller must then resync from a fresh snapshot. Unknown event types
 * only advance `seq`, so newer servers can add events.
 */
export function applyEvent(
  state: SessionState,
  type: string,
  data: unknown,
  seq: number,
): SessionState | null {
  const next = { ...state, seq };
  switch (type) {
    case "message.created":
    case "message.completed":
    case "tool.call":
    case "tool.result":
      return { ...next, messages: upsert(state.messages, (data as { message: Message }).message) };
    case "message.delta": {
      const { id, delta } = data as { id: string; delta: string };
      const target = state.messages.find((m) => m.id === id);
      if (target === undefined) return null;
      const messages = state.messages.map((m) => (m === target ? { ...m, content: m.content + delta } : m));
      return { ...next, messages };
    }
    case "state": {
      // Fields the event leaves out (an older server's, e.g. `wallet_address`) keep their value.
      const flags = data as Partial<SessionState>;
      const wallet_tx = flags.wallet_tx === undefined ? state.wallet_tx : fromServerTx(flags.wallet_tx);
      return { ...next, ...flags, wallet_tx, session_id: state.session_id, seq };
    }
    case "wallet.request":
      return { ...next, wallet_tx: fromServerTx((data as { tx: WalletTransaction }).tx) };
    case "wallet.resolved": {
      const { tx_id } = data as { tx_id: string };
      return state.wallet_tx?.id === tx_id ? { ...next, wallet_tx: null, pending_wallet_tx: null } : next;
    }
    default: // `session.closed` and any event this client does not know
      return next;
  }
}

function upsert(messages: Message[], message: Message): Message[] {
  const index = messages.findIndex((m) => m.id === message.id);
  if (index < 0) return [...messages, message];
  const copy = messages.slice();
  copy[index] = message;
  return copy;
}
