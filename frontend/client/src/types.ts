/**
 * The types of the chatbot client: the session state and its messages as the server
 * sends them (snake_case, as they come over the wire: the reducer applies events to them),
 * the ChatManager's configuration and callbacks, and the ChatClient's results (the
 * client's own objects, camelCase).
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

/**
 * How a proposed transaction fared when the server tried it on its network, from the
 * user's address, before showing it (`eth_call` and `eth_estimateGas`).
 */
export interface Simulation {
  /** False: it would revert; warn the user before they approve. */
  ok: boolean;
  /** Estimated gas; `null` when it would revert. */
  gas: number | null;
  /** gas × (base fee + tip) in wei, as a decimal string; `null` when it would revert. */
  fee_wei: string | null;
  /** Why it would revert (decoded), when known. */
  revert_reason: string | null;
}

/** The ERC-20 call a proposed transaction makes, in the token's own units. */
export interface TokenCall {
  function: "transfer" | "transferFrom" | "approve";
  /** The token contract (the transaction's `to`). */
  token: string;
  symbol: string | null;
  decimals: number;
  /** The raw amount, a decimal string. */
  amount: string;
  /** In token units; "unlimited" for an approval of 2^256 - 1. */
  amount_formatted: string;
  /** The recipient (transfers) or the spender (approvals). */
  counterparty: string;
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
  /**
   * The server's trial run, or `null` when it could not try it (no wallet address known,
   * the node unreachable, or an older server that does not simulate).
   */
  simulation: Simulation | null;
  /** What it does to an ERC-20 token, when it calls one (`null` otherwise). */
  token_call: TokenCall | null;
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
   * The user's wallet account (EIP-55) as the client reported it (`ChatClient.reportWallet`);
   * signed in with Ethereum, the signed-in address while none is reported; else `null`.
   */
  wallet_address: string | null;
  /** The chain the client reported its wallet on, or `null`. */
  wallet_chain_id: number | null;
  /**
   * The original app's field, kept for its clients: `null` or a JSON string of
   * `{to, value, data, gas?, description, timestamp}`. Read `wallet_tx` instead.
   */
  pending_wallet_tx: string | null;
  /** The transaction waiting for the user's wallet, or `null`. */
  wallet_tx: WalletTransaction | null;
  /** Messages waiting for their turn under `BUSY_POLICY=queue`. */
  queued: Message[];
  /** The conversation's title: its first words until renamed; `null` while it is empty. */
  title: string | null;
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
 * `unauthorized`, `session_not_found`, `siwe_signature`) or one of the client's own:
 * `empty_message`, `message_too_long`, `network_error`, `connection_failed`,
 * `no_pending_transaction`, `invalid_response`. The ChatClient throws it as a
 * `ChatRequestError`.
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

/** The wallet the user's client is connected to, as `ChatClient.reportWallet` reports it. */
export interface WalletAccount {
  /** The account (EIP-55 or all one case); `null` once the wallet disconnected. */
  address: string | null;
  /** The chain the wallet is on; `null` (or left out) when unknown. */
  chainId?: number | null;
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
  /**
   * A bearer token sent as `Authorization: Bearer …` on every request, streams included:
   * a string, or a function asked before each request (return `null` for none). Browsers
   * on the server's own origin need none: the sign-in calls set an HttpOnly cookie.
   */
  token?: TokenSource;
  /**
   * Whether requests carry cookies: `"same-origin"` (default; the UI served by the
   * server), `"include"` for a UI on another origin (the server must list it in
   * CORS_ORIGINS), `"omit"` for none.
   */
  credentials?: RequestCredentials;
}

/** ChatClient settings: the server and the credentials, as for ChatManager; all optional. */
export type ChatClientConfig = Partial<Pick<ChatManagerConfig, "backendUrl" | "token" | "credentials" | "fetch">>;

/** A bearer token, or where to get the current one before each request. */
export type TokenSource = string | (() => string | null | Promise<string | null>);

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

// ---- ChatClient: sign-in and the list of conversations ---------------------------------

/** A way of signing in the server accepts (its AUTH setting); `none`: no sign-in at all. */
export type AuthMethod = "none" | "anonymous" | "siwe" | "apikey" | "jwt";

/** Who the credentials name (`GET /api/auth/me`). */
export interface Me {
  /** `anon:…`, `eth:0x…` (checksummed), `key:NAME`, `jwt:SUB`; `null` when not signed in or under AUTH=none. */
  principal: string | null;
  /** What the server accepts, e.g. `["none"]` or `["anonymous", "siwe"]`. */
  methods: AuthMethod[];
  /** When this server's token ends (ISO 8601), else `null`. */
  expiresAt: string | null;
}

/** A successful sign-in. The browser also got the token as an HttpOnly cookie. */
export interface SignInResult {
  principal: string;
  /** When the token ends (ISO 8601). */
  expiresAt: string;
  /** Sign-in with Ethereum from an anonymous principal: how many of its conversations moved to the address. */
  movedSessions: number;
  /** The bearer token, for clients without cookies (pass it as the `token` option). */
  token: string;
}

/** What `signInWithEthereum` needs: the account and a way to sign with it. */
export interface SiweSignInOptions {
  /** The account that signs (EIP-55 checksummed, or all one case). */
  address: string;
  /** The chain to name in the message; default the server's (the nonce answer's `chain_id`). */
  chainId?: number;
  /** One line the wallet shows above the message's fields. */
  statement?: string;
  /** Signs the message text with `address` (EIP-191 `personal_sign`; viem: `walletClient.signMessage`), resolving to the 0x signature. */
  signMessage: (message: string) => Promise<string>;
}

/** One of my conversations (an entry of `GET /api/sessions`). */
export interface SessionSummary {
  sessionId: string;
  /** Its first words until renamed; `null` while it has no message. */
  title: string | null;
  createdAt: string;
  lastActiveAt: string;
  messageCount: number;
  /** A turn is running in it right now. */
  isProcessing: boolean;
}

/** A page of my conversations, most recently active first. */
export interface SessionPage {
  sessions: SessionSummary[];
  /** Pass as `cursor` for the next page; `null` on the last one. */
  nextCursor: string | null;
}

/** Where `listSessions` starts and how much it takes. */
export interface ListSessionsOptions {
  /** `nextCursor` of the previous page; none for the first page. */
  cursor?: string | null;
  /** Conversations per page, 1–200; the server's default is 50. */
  limit?: number;
}
