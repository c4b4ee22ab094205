/**
 * Sign-In with Ethereum (EIP-4361) messages, written exactly as the server parses them
 * (the same lines, in the same order, as `chatbot.auth.siwe.build_message`).
 */

/** The fields of a sign-in message. */
export interface SiweMessageFields {
  /** The server's authority (`host:port`), as `POST /api/auth/siwe/nonce` names it. */
  domain: string;
  /** The signing account: EIP-55 checksummed, or all one case. */
  address: string;
  /** The server's origin, e.g. `http://127.0.0.1:8080` (the nonce answer's `uri`). */
  uri: string;
  chainId: number;
  /** The server's single-use nonce. */
  nonce: string;
  issuedAt: Date;
  /** One line the wallet shows, e.g. "Sign in to the chat." */
  statement?: string;
  expirationTime?: Date;
  notBefore?: Date;
  requestId?: string;
  resources?: readonly string[];
  /** Prefixes the domain (`https://example.com wants you…`); usually left out. */
  scheme?: string;
}

const HEADER = " wants you to sign in with your Ethereum account:";

/** The EIP-4361 text for these fields: what the wallet signs and the server checks. */
export function buildSiweMessage(fields: SiweMessageFields): string {
  if (fields.statement?.includes("\n")) throw new Error("A sign-in statement must be one line.");
  const origin = fields.scheme ? `${fields.scheme}://${fields.domain}` : fields.domain;
  const lines = [`${origin}${HEADER}`, fields.address, ""];
  // With a statement: blank, statement, blank; without: two blank lines.
  lines.push(...(fields.statement === undefined ? [""] : [fields.statement, ""]));
  lines.push(
    `URI: ${fields.uri}`,
    "Version: 1",
    `Chain ID: ${String(fields.chainId)}`,
    `Nonce: ${fields.nonce}`,
    `Issued At: ${fields.issuedAt.toISOString()}`,
  );
  if (fields.expirationTime) lines.push(`Expiration Time: ${fields.expirationTime.toISOString()}`);
  if (fields.notBefore) lines.push(`Not Before: ${fields.notBefore.toISOString()}`);
  if (fields.requestId !== undefined) lines.push(`Request ID: ${fields.requestId}`);
  if (fields.resources?.length) lines.push("Resources:", ...fields.resources.map((r) => `- ${r}`));
  return lines.join("\n");
}
