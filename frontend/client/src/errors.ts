/** The client's errors: the server's `{"error": {"code", "message"}}` envelope, as a value or thrown. */
import type { ChatError } from "./types.js";

/**
 * A failed request, thrown by the `ChatClient` calls. It is a `ChatError` (same `code`,
 * `message`, `status` as the ChatManager reports to `onError`), so one error display
 * serves both.
 */
export class ChatRequestError extends Error implements ChatError {
  readonly code: string;
  readonly status?: number;
  /** Seconds to wait before trying again (`Retry-After` of a 429 or 503), when the server said. */
  readonly retryAfter?: number;

  constructor(error: ChatError, retryAfter?: number) {
    super(error.message);
    this.name = "ChatRequestError";
    this.code = error.code;
    if (error.status !== undefined) this.status = error.status;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}

/** The server's error envelope as a ChatError; the status line when the body is not one. */
export async function readError(response: Response): Promise<ChatError> {
  const error: ChatError = {
    code: `http_${String(response.status)}`,
    message: response.statusText || `HTTP ${String(response.status)}`,
    status: response.status,
  };
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === "string") error.code = body.error.code;
    if (typeof body.error?.message === "string") error.message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return error;
}

/** `Retry-After` in seconds, or undefined when absent or not a number of seconds. */
export function retryAfterSeconds(response: Response): number | undefined {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
}

/** A thrown value's message. */
export function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
