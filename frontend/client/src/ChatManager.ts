import { createParser, type EventSourceMessage } from "eventsource-parser";

import { messageOf, readError, retryAfterSeconds } from "./errors.js";
import { createSessionId, isValidSessionId } from "./ids.js";
import { applyEvent, emptyState, fromServerState, isTyping } from "./state.js";
import { Transport } from "./transport.js";
import type {
  ChatError,
  ChatManagerConfig,
  ChatManagerEventHandlers,
  ConnectionStatus,
  NetworkSwitchResult,
  SessionState,
} from "./types.js";

/** The settings besides the transport's (server, credentials, fetch). */
type Settings = Required<
  Omit<ChatManagerConfig, "sessionId" | "backendUrl" | "fetch" | "token" | "credentials">
>;

type Outcome<T> = { ok: true; data: T } | { ok: false; error: ChatError };

/**
 * One user's chat with the server: a session id, that session's live state and the
 * calls that change it.
 *
 * It follows `GET /api/sessions/{id}/events` (read with `fetch`, parsed with
 * eventsource-parser): a `snapshot` replaces the state, typed deltas update it. When
 * the stream breaks, or stays silent (not even a keep-alive) for `keepAliveTimeout`,
 * it reconnects with exponential backoff and jitter, sending `Last-Event-ID` so the
 * server replays exactly what was missed. Every request carries the session id in its
 * body (or path) and in the `X-Session-Id` header, and the credentials (`token`, cookie);
 * every failure reaches `onError` (`unauthorized` when signed out: the stream stops).
 *
 * ```ts
 * const chat = new ChatManager({ persistSession: true }, {
 *   onMessage: (messages) => render(messages),
 *   onError: (error) => toast(error.message),
 * });
 * chat.connect();
 * await chat.sendMessage("What is my balance?");
 * ```
 */
export class ChatManager {
  private readonly settings: Settings;
  private readonly transport: Transport;
  private readonly handlers: ChatManagerEventHandlers;
  private sessionId: string;
  private state: SessionState;
  private lastEventId: number | null = null;
  private status: ConnectionStatus = "disconnected";
  private typing = false;
  /** Whether `connect()` was called (and not `disconnect()`): the stream should be open. */
  private active = false;
  /** Bumped whenever the stream is replaced or stopped; callbacks of older streams check it. */
  private generation = 0;
  private attempt = 0;
  private abortController: AbortController | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private keepAliveTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param config settings (all optional; see `ChatManagerConfig` for the defaults)
   * @param handlers callbacks for state changes and errors
   */
  constructor(config: Partial<ChatManagerConfig> = {}, handlers: ChatManagerEventHandlers = {}) {
    this.transport = new Transport(config);
    this.settings = {
      maxMessageLength: config.maxMessageLength ?? 8000,
      reconnectAttempts: config.reconnectAttempts ?? 5,
      reconnectDelay: config.reconnectDelay ?? 1000,
      maxReconnectDelay: config.maxReconnectDelay ?? 30_000,
      persistSession: config.persistSession ?? false,
      storageKey: config.storageKey ?? "chatbot.sessionId",
      keepAliveTimeout: config.keepAliveTimeout ?? 45_000,
    };
    this.handlers = handlers;
    this.sessionId = config.sessionId ?? this.storedSessionId() ?? createSessionId();
    this.persist();
    this.state = emptyState(this.sessionId);
  }

  // ---- session ---------------------------------------------------------------------

  /** The session this manager talks to. */
  getSessionId(): string {
    return this.sessionId;
  }

  /**
   * Switches to another session (e.g. one from a link): the state starts empty and, if
   * the stream is open, it reconnects to the new session, which sends its snapshot.
   */
  setSessionId(sessionId: string): void {
    if (sessionId === this.sessionId) return;
    this.sessionId = sessionId;
    this.persist();
    this.lastEventId = null;
    this.commit(emptyState(sessionId));
    if (this.active) {
      this.attempt = 0;
      this.restart("connecting");
    }
  }

  /** Starts a new, empty conversation under a fresh id and returns that id. */
  newSession(): string {
    const sessionId = createSessionId();
    this.setSessionId(sessionId);
    return sessionId;
  }

  /** The session's current state (messages, flags, network, pending transaction). */
  getState(): SessionState {
    return this.state;
  }

  /** The stream's connection state. */
  getConnectionStatus(): ConnectionStatus {
    return this.status;
  }

  // ---- the events stream -----------------------------------------------------------

  /** Opens (or reopens) the session's events stream; it stays open until `disconnect()`. */
  connect(): void {
    this.active = true;
    this.attempt = 0;
    this.restart("connecting");
  }

  /** Closes the stream and stops reconnecting. */
  disconnect(): void {
    this.active = false;
    this.stop();
    this.setStatus("disconnected");
  }

  private restart(status: ConnectionStatus): void {
    const generation = this.stop();
    this.setStatus(status);
    void this.follow(generation);
  }

  /** Ends the current stream and timers; returns the generation of whatever comes next. */
  private stop(): number {
    this.generation += 1;
    this.abortController?.abort();
    this.abortController = null;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.keepAliveTimer);
    return this.generation;
  }

  private async follow(generation: number): Promise<void> {
    const controller = new AbortController();
    this.abortController = controller;
    const headers: Record<string, string> = {
      Accept: "text/event-stream",
      "X-Session-Id": this.sessionId,
    };
    if (this.lastEventId !== null) headers["Last-Event-ID"] = String(this.lastEventId);
    const current = () => generation === this.generation;

    let response: Response;
    try {
      const path = `/api/sessions/${encodeURIComponent(this.sessionId)}/events`;
      response = await this.transport.fetch(path, { headers, signal: controller.signal });
    } catch {
      if (current()) this.retry();
      return;
    }
    if (!current()) return void response.body?.cancel().catch(() => undefined);
    if (!response.ok || !response.body) {
      const error = await readError(response);
      if (!current()) return;
      this.report(error);
      const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
      if (retryable) this.retry((retryAfterSeconds(response) ?? 0) * 1000);
      else this.disconnect();
      return;
    }

    this.attempt = 0;
    this.setStatus("connected");
    this.watchKeepAlive(generation);
    const parser = createParser({
      onEvent: (event) => {
        if (current()) this.receive(event);
      },
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || !current()) break;
        this.watchKeepAlive(generation); // any bytes, events or `: keep-alive`, prove it lives
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // the connection broke (or we aborted it): handled below
    }
    if (current()) this.retry(); // the server ended the stream, or it broke: resume
  }

  /** Treats a silent stream as dead once `keepAliveTimeout` passes without any bytes. */
  private watchKeepAlive(generation: number): void {
    clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = setTimeout(() => {
      if (generation === this.generation) this.retry();
    }, this.settings.keepAliveTimeout);
  }

  /** Drops the current stream and schedules the next attempt, or gives up. */
  private retry(minimumDelay = 0): void {
    const generation = this.stop();
    const { reconnectAttempts, reconnectDelay, maxReconnectDelay } = this.settings;
    if (this.attempt >= reconnectAttempts) {
      this.active = false;
      this.setStatus("disconnected");
      this.report({
        code: "connection_failed",
        message: `Could not connect to ${this.transport.backendUrl} after ${String(reconnectAttempts)} attempts.`,
      });
      return;
    }
    this.attempt += 1;
    const base = Math.min(reconnectDelay * 2 ** (this.attempt - 1), maxReconnectDelay);
    const delay = Math.max(base * (1 + Math.random() / 2), minimumDelay);
    this.setStatus("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      if (generation === this.generation) void this.follow(generation);
    }, delay);
  }

  /** Reconnects without `Last-Event-ID` (after the usual delay), so the server sends a fresh snapshot. */
  private resync(): void {
    this.lastEventId = null;
    this.retry();
  }

  private receive(event: EventSourceMessage): void {
    const seq = Number(event.id);
    const data = parseJson(event.data);
    if (data === undefined || !Number.isSafeInteger(seq)) {
      this.resync();
    } else if (event.event === "snapshot") {
      this.lastEventId = seq;
      this.commit(fromServerState(data as Partial<SessionState>, this.sessionId));
    } else if (this.lastEventId === null || seq > this.lastEventId + 1) {
      this.resync(); // a gap: something was lost
    } else if (seq > this.lastEventId) {
      // (seq <= lastEventId: already applied, because a POST answer got ahead of the stream)
      const next = applyEvent(this.state, event.event ?? "message", data, seq);
      if (next === null) {
        this.resync();
        return;
      }
      // After `session.closed` the session's log is gone: the next stream starts from a snapshot.
      this.lastEventId = event.event === "session.closed" ? null : seq;
      this.commit(next);
    }
  }

  // ---- requests --------------------------------------------------------------------

  /**
   * Sends a user message. It is checked first (empty, or longer than `maxMessageLength`:
   * `onError` with `empty_message` / `message_too_long`, no request). Resolves `true` once
   * the server has accepted it (the reply then streams in), `false` after an error (for
   * example `session_busy` while a turn runs), which also went to `onError`.
   */
  async sendMessage(text: string): Promise<boolean> {
    if (text.trim() === "") {
      this.report({ code: "empty_message", message: "The message is empty." });
      return false;
    }
    const length = Array.from(text).length; // code points, as the server counts
    if (length > this.settings.maxMessageLength) {
      this.report({
        code: "message_too_long",
        message: `The message has ${String(length)} characters; the limit is ${String(this.settings.maxMessageLength)}.`,
      });
      return false;
    }
    return this.postForState("/api/chat", { message: text });
  }

  /** Stops the running turn; resolves once it has ended. */
  async interrupt(): Promise<boolean> {
    return this.postForState("/api/interrupt", {});
  }

  /** Shows a system note in the conversation (and hands it to the agent). */
  async sendSystemMessage(text: string): Promise<boolean> {
    return this.postForState("/api/system", { message: text });
  }

  /** Switches this session (only this one) to another network, e.g. `"testnet"`. */
  async sendNetworkSwitchRequest(network: string): Promise<NetworkSwitchResult> {
    const outcome = await this.post<NetworkSwitchResult>("/api/mcp-command", {
      command: "set_network",
      args: { network },
    });
    return outcome.ok ? outcome.data : { success: false, message: outcome.error.message };
  }

  /**
   * Answers the pending wallet transaction: `success` reports it sent with its `hash`,
   * otherwise rejected with `error`. Without a pending transaction: `onError` with
   * `no_pending_transaction`.
   */
  async sendTransactionResult(success: boolean, hash?: string, error?: string): Promise<boolean> {
    const tx = this.state.wallet_tx;
    if (tx === null) {
      this.report({ code: "no_pending_transaction", message: "No transaction is waiting for the wallet." });
      return false;
    }
    return this.postForState("/api/wallet/result", {
      tx_id: tx.id,
      status: success ? "sent" : "rejected",
      ...(success ? { hash } : { error: error ?? "Rejected by the user." }),
    });
  }

  private async postForState(path: string, body: Record<string, unknown>): Promise<boolean> {
    const outcome = await this.post<SessionState>(path, body);
    if (!outcome.ok) return false;
    const state = outcome.data;
    // A full state newer than what the stream has shown: take it now; the stream's copies
    // of those events are skipped by seq.
    if (state.session_id === this.sessionId && (this.lastEventId === null || state.seq > this.lastEventId)) {
      this.lastEventId = state.seq;
      this.commit(fromServerState(state, this.sessionId));
    }
    return true;
  }

  private async post<T>(path: string, body: Record<string, unknown>): Promise<Outcome<T>> {
    const sessionId = this.sessionId;
    let error: ChatError;
    try {
      const response = await this.transport.fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Session-Id": sessionId },
        body: JSON.stringify({ ...body, session_id: sessionId }),
      });
      if (response.ok) return { ok: true, data: (await response.json()) as T };
      error = await readError(response);
    } catch (cause) {
      error = { code: "network_error", message: messageOf(cause) };
    }
    this.report(error);
    return { ok: false, error };
  }

  // ---- notifications ---------------------------------------------------------------

  private commit(next: SessionState): void {
    const previous = this.state;
    this.state = next;
    if (next.messages !== previous.messages) this.call("onMessage", next.messages);
    const typing = isTyping(next);
    if (typing !== this.typing) {
      this.typing = typing;
      this.call("onTypingChange", typing);
    }
    if (next.is_processing !== previous.is_processing) this.call("onProcessingChange", next.is_processing);
    if ((next.wallet_tx?.id ?? null) !== (previous.wallet_tx?.id ?? null)) {
      this.call("onWalletTransactionRequest", next.wallet_tx);
    }
    this.call("onStateChange", next);
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.call("onConnectionChange", status);
  }

  private report(error: ChatError): void {
    this.call("onError", error);
  }

  /** Calls a handler; one that throws is logged, never allowed to break the stream. */
  private call<K extends keyof ChatManagerEventHandlers>(
    name: K,
    value: Parameters<NonNullable<ChatManagerEventHandlers[K]>>[0],
  ): void {
    const handler = this.handlers[name] as ((value: unknown) => void) | undefined;
    try {
      handler?.(value);
    } catch (error) {
      console.error(`ChatManager: ${name} handler failed`, error);
    }
  }

  // ---- persistence -----------------------------------------------------------------

  private storedSessionId(): string | undefined {
    if (!this.settings.persistSession) return undefined;
    try {
      const id = storage()?.getItem(this.settings.storageKey);
      return id && isValidSessionId(id) ? id : undefined;
    } catch {
      return undefined;
    }
  }

  private persist(): void {
    if (!this.settings.persistSession) return;
    try {
      storage()?.setItem(this.settings.storageKey, this.sessionId);
    } catch {
      // storage full or forbidden (private mode): the session just won't survive a reload
    }
  }
}

/** `localStorage`, or null where there is none (Node, workers) or it is forbidden. */
function storage(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
