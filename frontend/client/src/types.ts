/**
 * The types of the chatbot client: the server's JSON (snake_case, as it comes over the
 * wire) and the ChatManager's configuration and callbacks.
 */

/** Who wrote a message. */
export type Sender = "user" | "agent" | "system";

/** Where a message is in its life; `interrupted` and `error` are final, like `complete`. */
export type MessageStatus = "streaming" | "complete" | "interrupted" | "error";

/** Where a tool call is: `running` until it has a result or an error. */
export type ToolStatus = "running" | "success" | "error" | "interrupted";

/** A tool call the agent made, shown as its own message (`Message.tool`). */
export interface ToolCall {
  name: string;
  args: Record<string, unknown>;
  status: ToolStatus;
  call_id: string;
  /** What the tool returned, once it has (`null` while running or on error). */
  result?: unknown;
  /** Why the tool failed, or `null`. */
  error?: string | null;
}

/** One entry of a conversation, exactly as the server sends it. */
export interface Message {
  id: string;
  sender: Sender;
  content: string;
  /** ISO-8601 UTC, e.g. `2026-11-24T03:04:05.123Z`. */
  timestamp: string;
  /** True while an agent reply (or a tool call) is still being produced. */
  is_streaming: boolean;
  status: MessageStatus;
  /** Set when this message is a tool call, else `null`. */
  tool: ToolCall | null;
}

/** A transaction the agent asks the user's wallet to sign (`wallet_tx`). */
export interface WalletTransaction {
  id: string;
  /** EIP-55 address. */
  to: string;
  /** Value in wei, as a decimal string. */
  value: string;
  /** Hex calldata (`0x` when none). */
  data: string;
  chain_id: number;
  network: string;
  description: string;
  created_at: string;
  expires_at: string;
}

/** How a pending wallet transaction was answered. */
export type WalletResultStatus = "sent" | "rejected" | "failed";

/**
 * A session's full state: the server's `WebStateResponse` (also the `snapshot` event),
 * kept up to date by the typed events.
 */
export interface SessionState {
  session_id: string;
  /** The seq of the last event this state includes. */
  seq: number;
  /** The newest messages (the server keeps older ones paged, see `older_messages`). */
  messages: Message[];
  /** How many older messages come before `messages`. */
  older_messages: number;
  /** A turn is running (the agent is working on a reply). */
  is_processing: boolean;
  /** The server's local model is still loading. */
  is_loading: boolean;
  /** The server is still connecting to its tool (MCP) servers. */
  is_connecting_mcp: boolean;
  /** The configured model provider has no API key: chat answers 503. */
  missing_api_key: boolean;
  /** This session's network (e.g. `testnet`). */
  network: string;
  /**
   * The original app's field, kept for its clients: `null` or a JSON string of
   * `{to, value, data, gas?, description, timestamp}`. Read `wallet_tx` instead.
   */
  pending_wallet_tx: string | null;
  /** The transaction waiting for the user's wallet, or `null`. */
  wallet_tx: WalletTransaction | null;
  /** Messages waiting for their turn under `BUSY_POLICY=queue`. */
  queued: Message[];
}

/** The stream's connection state. */
export type ConnectionStatus = "disconnected" | "connecting" | "connected" | "reconnecting";

/** The connection states by name, for code written against the original enum. */
export const ConnectionStatus = {
  DISCONNECTED: "disconnected",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
} as const satisfies Record<string, ConnectionStatus>;

/**
 * An error for the UI. `code` is the server's error code (e.g. `session_busy`,
 * `message_too_long`) or one of the client's own: `empty_message`, `message_too_long`,
 * `network_error`, `connection_failed`, `no_pending_transaction`, `invalid_response`.
 */
export interface ChatError {
  code: string;
  message: string;
  /** The HTTP status, when the server answered. */
  status?: number;
}

/** What `sendNetworkSwitchRequest` resolves to (the server's `mcp-command` answer). */
export interface NetworkSwitchResult {
  success: boolean;
  message: string;
  data?: unknown;
}

/** ChatManager settings; every field has a default. */
export interface ChatManagerConfig {
  /**
   * The server's base URL, without a trailing slash. Default: the page's origin in a
   * browser, else `http://127.0.0.1:8080`.
   */
  backendUrl: string;
  /** Longest message in characters (code points), checked before sending. Default 8000, the server's. */
  maxMessageLength: number;
  /** Reconnect attempts after a failure before giving up ("disconnected"). Default 5. */
  reconnectAttempts: number;
  /** First reconnect delay in ms; it doubles each attempt, plus up to 50% jitter. Default 1000. */
  reconnectDelay: number;
  /** Longest reconnect delay in ms. Default 30000. */
  maxReconnectDelay?: number;
  /** Use this session instead of a new (or persisted) one. */
  sessionId?: string;
  /** Keep the session id in `localStorage` so a reload continues the conversation. Default false. */
  persistSession?: boolean;
  /** The `localStorage` key for `persistSession`. Default `chatbot.sessionId`. */
  storageKey?: string;
  /** Silence in ms (no event, no keep-alive) after which the stream counts as dead. Default 45000. */
  keepAliveTimeout?: number;
  /** The `fetch` to use (tests, instrumentation). Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/** Callbacks; each is optional. */
export interface ChatManagerEventHandlers {
  /** The full current message list, after every change (a new array each time). */
  onMessage?: (messages: Message[]) => void;
  onConnectionChange?: (status: ConnectionStatus) => void;
  /** Every failed request, local validation error and given-up connection. */
  onError?: (error: ChatError) => void;
  /** An agent reply is streaming (true) or no longer (false). */
  onTypingChange?: (isTyping: boolean) => void;
  /** A new pending wallet transaction, or `null` once it is resolved or gone. */
  onWalletTransactionRequest?: (transaction: WalletTransaction | null) => void;
  /** A turn started (true) or ended (false). */
  onProcessingChange?: (isProcessing: boolean) => void;
  /** The whole session state, after every change (network, flags, queue, …). */
  onStateChange?: (state: SessionState) => void;
}
