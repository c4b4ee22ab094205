/** The sign-in message text: line for line what the server's parser reads. */
import { describe, expect, it } from "vitest";

import { buildSiweMessage } from "../src/index.js";

const ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const AT = new Date("2026-11-24T03:04:05.123Z");

describe("buildSiweMessage", () => {
  // The expected texts are `chatbot.auth.siwe.build_message` for the same fields (Python
  // writes the time with microseconds, `.123000Z`; both are RFC 3339 and parse the same).
  it("writes a message with a statement", () => {
    const text = buildSiweMessage({
      domain: "127.0.0.1:8080",
      address: ADDRESS,
      uri: "http://127.0.0.1:8080",
      chainId: 31337,
      nonce: "abcdef0123456789",
      issuedAt: AT,
      statement: "Sign in to chat.",
    });
    expect(text).toBe(
      "127.0.0.1:8080 wants you to sign in with your Ethereum account:\n" +
        `${ADDRESS}\n\nSign in to chat.\n\n` +
        "URI: http://127.0.0.1:8080\nVersion: 1\nChain ID: 31337\nNonce: abcdef0123456789\n" +
        "Issued At: 2026-11-24T03:04:05.123Z",
    );
  });

  it("writes every optional field, in the spec's order", () => {
    const text = buildSiweMessage({
      domain: "example.com",
      address: ADDRESS,
      uri: "https://example.com/login",
      chainId: 1,
      nonce: "abcdef0123456789",
      issuedAt: AT,
      expirationTime: AT,
      notBefore: AT,
      requestId: "r-1",
      resources: ["https://example.com/a", "ipfs://b"],
      scheme: "https",
    });
    expect(text).toBe(
      "https://example.com wants you to sign in with your Ethereum account:\n" +
        `${ADDRESS}\n\n\n` + // no statement: two blank lines
        "URI: https://example.com/login\nVersion: 1\nChain ID: 1\nNonce: abcdef0123456789\n" +
        "Issued At: 2026-11-24T03:04:05.123Z\nExpiration Time: 2026-11-24T03:04:05.123Z\n" +
        "Not Before: 2026-11-24T03:04:05.123Z\nRequest ID: r-1\nResources:\n" +
        "- https://example.com/a\n- ipfs://b",
    );
  });

  it("refuses a statement of several lines", () => {
    const fields = { domain: "d", address: ADDRESS, uri: "http://d", chainId: 1, nonce: "abcdefgh", issuedAt: AT };
    expect(() => buildSiweMessage({ ...fields, statement: "one\ntwo" })).toThrow(/one line/);
  });
});
