/**
 * How requests reach the server: its base URL, the credentials each request carries
 * (a bearer token and/or the browser's cookie) and the `fetch` that sends them. The
 * ChatManager (streams included) and the ChatClient share it, so a token reaches every call.
 */
import { ChatRequestError, messageOf, readError, retryAfterSeconds } from "./errors.js";
import type { ChatClientConfig, TokenSource } from "./types.js";

function defaultBackendUrl(): string {
  return typeof location === "undefined" ? "http://127.0.0.1:8080" : location.origin;
}

/** Sends requests to one server with the configured credentials. */
export class Transport {
  /** The server's base URL, without a trailing slash. */
  readonly backendUrl: string;
  private readonly token: TokenSource | undefined;
  private readonly credentials: RequestCredentials;
  private readonly fetchImpl: typeof fetch;

  constructor(config: ChatClientConfig = {}) {
    this.backendUrl = (config.backendUrl ?? defaultBackendUrl()).replace(/\/+$/, "");
    this.token = config.token;
    this.credentials = config.credentials ?? "same-origin";
    // Looked up per call, so a test (or instrumentation) can replace the global later.
    this.fetchImpl = config.fetch ?? ((input, init) => fetch(input, init));
  }

  /**
   * `fetch(backendUrl + path)` with `Authorization: Bearer <token>` when a token is
   * configured (and the token function gives one) and the cookie policy. Rejects like
   * fetch does (network failure, abort, or a token function that throws).
   */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const token = typeof this.token === "function" ? await this.token() : this.token;
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return this.fetchImpl(this.backendUrl + path, { ...init, headers, credentials: this.credentials });
  }

  /**
   * A JSON request: `body` (if any) goes as JSON; resolves to the parsed answer (undefined
   * for an empty one, e.g. 204). Throws `ChatRequestError` with the server's code, or
   * `network_error` when the server could not be reached.
   */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await this.fetch(path, {
        method,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (cause) {
      throw new ChatRequestError({ code: "network_error", message: messageOf(cause) });
    }
    if (!response.ok) throw new ChatRequestError(await readError(response), retryAfterSeconds(response));
    const text = await response.text();
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ChatRequestError({
        code: "invalid_response",
        message: `${method} ${path} answered something that is not JSON.`,
        status: response.status,
      });
    }
  }
}
