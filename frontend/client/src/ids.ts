/** Session ids: what the server accepts, and how the client makes new ones. */

const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** True for an id the server accepts: 1–128 characters of `[A-Za-z0-9_-]`. */
export function isValidSessionId(id: string): boolean {
  return SESSION_ID.test(id);
}

/** The parts of Web Crypto that id generation uses. */
export type RandomSource = Partial<Pick<Crypto, "randomUUID" | "getRandomValues">>;

/**
 * A new random UUID v4: `crypto.randomUUID()` where available (secure contexts), else
 * one built from `crypto.getRandomValues`, else from `Math.random` (last resort).
 */
export function createSessionId(source?: RandomSource): string {
  // Web Crypto can be missing altogether (old runtimes); randomUUID needs a secure context.
  const random = source ?? (globalThis as { crypto?: RandomSource }).crypto;
  if (random && typeof random.randomUUID === "function") return random.randomUUID();
  const bytes = new Uint8Array(16);
  if (random && typeof random.getRandomValues === "function") {
    random.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40; // version 4
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
