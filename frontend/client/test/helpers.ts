/** Test helpers: a recorder of ChatManager callbacks and a fetch that the tests can watch and cut. */
import type {
  ChatError,
  ChatManagerEventHandlers,
  ConnectionStatus,
  Message,
  SessionState,
  WalletTransaction,
} from "../src/index.js";

/** Records every callback and lets a test await a condition on what it has seen. */
export class Recorder {
  readonly messages: Message[][] = [];
  readonly statuses: ConnectionStatus[] = [];
  readonly errors: ChatError[] = [];
  readonly typing: boolean[] = [];
  readonly processing: boolean[] = [];
  readonly wallet: (WalletTransaction | null)[] = [];
  readonly states: SessionState[] = [];
  private readonly waiters = new Set<() => void>();

  readonly handlers: Required<ChatManagerEventHandlers> = {
    onMessage: (messages) => {
      this.record(this.messages, messages);
    },
    onConnectionChange: (status) => {
      this.record(this.statuses, status);
    },
    onError: (error) => {
      this.record(this.errors, error);
    },
    onTypingChange: (typing) => {
      this.record(this.typing, typing);
    },
    onProcessingChange: (processing) => {
      this.record(this.processing, processing);
    },
    onWalletTransactionRequest: (tx) => {
      this.record(this.wallet, tx);
    },
    onStateChange: (state) => {
      this.record(this.states, state);
    },
  };

  /** The latest message list. */
  get latest(): Message[] {
    return this.messages.at(-1) ?? [];
  }

  /** The latest agent (non-tool) message, if any. */
  get agentReply(): Message | undefined {
    return this.latest.filter((m) => m.sender === "agent" && m.tool === null).at(-1);
  }

  get status(): ConnectionStatus | undefined {
    return this.statuses.at(-1);
  }

  /** Resolves once `predicate` holds (checked now and after every callback). */
  until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    return untilChecked(predicate, what, timeoutMs, this.waiters);
  }

  private record<T>(list: T[], value: T): void {
    list.push(value);
    for (const wake of [...this.waiters]) wake();
  }
}

function untilChecked(
  predicate: () => boolean,
  what: string,
  timeoutMs: number,
  waiters: Set<() => void>,
): Promise<void> {
  if (predicate()) return Promise.resolve();
  return new Promise((done, fail) => {
    const check = () => {
      if (!predicate()) return;
      waiters.delete(check);
      clearTimeout(timer);
      done();
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      fail(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    waiters.add(check);
  });
}

/** One request the client made. */
export interface Call {
  url: string;
  method: string;
  headers: Headers;
  body: Record<string, unknown> | undefined;
  at: number;
}

/** An events stream as the client received it, which a test can cut or silence. */
export class TappedStream {
  /** Everything the server sent on this stream, as text. */
  text = "";
  private stalled = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly decoder = new TextDecoder();
  readonly readable: ReadableStream<Uint8Array>;

  constructor(
    private readonly source: ReadableStream<Uint8Array>,
    private readonly onData: () => void,
  ) {
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
        void this.pump();
      },
      cancel: (reason) => source.cancel(reason),
    });
  }

  /** How many `: keep-alive` comments arrived. */
  get keepAlives(): number {
    return this.text.split(": keep-alive").length - 1;
  }

  /** Breaks the connection as a network failure would. */
  kill(): void {
    try {
      this.controller.error(new TypeError("connection reset by the test"));
    } catch {
      // already closed
    }
    void this.source.cancel().catch(() => undefined);
  }

  /** Keeps the connection open but delivers nothing more (a dead proxy, a sleeping laptop). */
  stall(): void {
    this.stalled = true;
  }

  private async pump(): Promise<void> {
    const reader = this.source.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.text += this.decoder.decode(value, { stream: true });
        if (!this.stalled) this.controller.enqueue(value);
        this.onData();
      }
      if (!this.stalled) this.controller.close();
    } catch (error) {
      try {
        this.controller.error(error);
      } catch {
        // already errored by kill()
      }
    }
  }
}

/** A `fetch` that records every request and taps every events stream. */
export class TappedFetch {
  readonly calls: Call[] = [];
  readonly streams: TappedStream[] = [];
  private readonly waiters = new Set<() => void>();

  readonly fetch: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const body = typeof init?.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : undefined;
    this.calls.push({ url, method: init?.method ?? "GET", headers: new Headers(init?.headers), body, at: performance.now() });
    this.wake();
    const response = await fetch(input, init);
    if (!url.includes("/events") || response.body === null) return response;
    const tap = new TappedStream(response.body, () => {
      this.wake();
    });
    this.streams.push(tap);
    this.wake();
    return new Response(tap.readable, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

  /** Requests to the events stream. */
  get eventRequests(): Call[] {
    return this.calls.filter((c) => c.url.includes("/events"));
  }

  until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    return untilChecked(predicate, what, timeoutMs, this.waiters);
  }

  private wake(): void {
    for (const wake of [...this.waiters]) wake();
  }
}

/** A minimal in-memory `localStorage`. */
export class MemoryStorage implements Storage {
  private readonly items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  clear(): void {
    this.items.clear();
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

/** The server's view of a session (`GET /api/state`), or its error status. */
export async function serverState(backendUrl: string, sessionId: string): Promise<SessionState> {
  const response = await fetch(`${backendUrl}/api/state?session_id=${encodeURIComponent(sessionId)}`);
  if (!response.ok) throw new Error(`GET /api/state: ${String(response.status)}`);
  return (await response.json()) as SessionState;
}

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
