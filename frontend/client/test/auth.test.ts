/**
 * Signing in and "my conversations" against the real server with AUTH=anonymous,siwe
 * (started by global-setup.ts). Node has no cookies: each user holds its token and hands
 * it over with the `token` option, as a script or a server-side app would.
 */
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { afterEach, describe, expect, inject, it } from "vitest";

import { ChatClient, ChatManager, ChatRequestError, type ChatManagerConfig, type SessionSummary } from "../src/index.js";
import { Recorder, TappedFetch } from "./helpers.js";

const authBackendUrl = inject("authBackendUrl");
const backendUrl = inject("backendUrl");
const managers: ChatManager[] = [];

afterEach(() => {
  for (const manager of managers.splice(0)) manager.disconnect();
});

/** One person at the auth server: a ChatClient and ChatManagers sharing the token it holds. */
class User {
  token: string | null = null;
  readonly client = new ChatClient({ backendUrl: authBackendUrl, token: () => this.token });

  async signInAnonymously(): Promise<string> {
    const result = await this.client.signInAnonymously();
    this.token = result.token;
    return result.principal;
  }

  async signInWithEthereum(account: PrivateKeyAccount) {
    const result = await this.client.signInWithEthereum({
      address: account.address,
      statement: "Sign in to the chat.",
      signMessage: (message) => account.signMessage({ message }),
    });
    this.token = result.token;
    return result;
  }

  /** A ChatManager (disconnected after the test) with its recorder. */
  chat(config: Partial<ChatManagerConfig> = {}) {
    const recorder = new Recorder();
    const manager = new ChatManager(
      { backendUrl: authBackendUrl, token: () => this.token, reconnectDelay: 50, ...config },
      recorder.handlers,
    );
    managers.push(manager);
    return { chat: manager, recorder };
  }

  /** Sends a message in a new conversation and waits for the whole reply; returns its id. */
  async converse(text: string, sessionId?: string): Promise<string> {
    const { chat, recorder } = this.chat(sessionId === undefined ? {} : { sessionId });
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");
    expect(await chat.sendMessage(text)).toBe(true);
    await recorder.until(() => recorder.agentReply?.content === `You said: ${text}`, "the reply");
    chat.disconnect();
    return chat.getSessionId();
  }

  /** Every conversation, walking the pages. */
  async allSessions(limit?: number): Promise<SessionSummary[]> {
    const all: SessionSummary[] = [];
    let cursor: string | null = null;
    do {
      const page = await this.client.listSessions({ cursor, limit });
      all.push(...page.sessions);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return all;
  }
}

/** The ChatRequestError a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<ChatRequestError> {
  const error: unknown = await promise.then(
    () => undefined,
    (cause: unknown) => cause,
  );
  if (!(error instanceof ChatRequestError)) throw new Error(`expected a ChatRequestError, got ${String(error)}`);
  return error;
}

describe("signing in", () => {
  it("an anonymous user chats, and the conversation is listed with its title", async () => {
    const user = new User();
    const principal = await user.signInAnonymously();
    expect(principal).toMatch(/^anon:/);
    expect(await user.client.me()).toMatchObject({ principal, methods: ["anonymous", "siwe"] });

    const { chat, recorder } = user.chat();
    chat.connect();
    expect(await chat.sendMessage("What is the gas price on mainnet right now?")).toBe(true);
    await recorder.until(() => recorder.processing.at(-1) === false, "turn over");
    expect(recorder.agentReply?.content).toBe("You said: What is the gas price on mainnet right now?");
    await recorder.until(() => chat.getState().title !== null, "the title in the state");
    expect(chat.getState().title).toBe("What is the gas price on…");

    const { sessions, nextCursor } = await user.client.listSessions();
    expect(nextCursor).toBeNull();
    expect(sessions).toEqual([
      expect.objectContaining({
        sessionId: chat.getSessionId(),
        title: "What is the gas price on…",
        messageCount: 2,
        isProcessing: false,
      }) as unknown,
    ]);
  });

  it("signs in with an Ethereum account; me() names the address", async () => {
    const account = privateKeyToAccount(generatePrivateKey());
    const user = new User();
    const result = await user.signInWithEthereum(account);
    expect(result.principal).toBe(`eth:${account.address}`);
    expect(result.movedSessions).toBe(0);
    expect(Date.parse(result.expiresAt)).toBeGreaterThan(Date.now());
    const me = await user.client.me();
    expect(me.principal).toBe(`eth:${account.address}`);
    expect(me.expiresAt).toBe(result.expiresAt);
    await user.converse("hello from my wallet");
  });

  it("sends the token with every request, the events stream included", async () => {
    const user = new User();
    await user.signInAnonymously();
    const tap = new TappedFetch();
    const { chat, recorder } = user.chat({ fetch: tap.fetch, credentials: "omit" });
    chat.connect();
    expect(await chat.sendMessage("is my token there?")).toBe(true);
    await recorder.until(() => recorder.agentReply?.content === "You said: is my token there?", "the reply");
    expect(tap.eventRequests).not.toHaveLength(0);
    for (const call of tap.calls) expect(call.headers.get("Authorization")).toBe(`Bearer ${user.token ?? ""}`);
  });

  it("stays signed out when the wallet refuses to sign", async () => {
    const user = new User();
    const refused = new Error("User rejected the request.");
    const address = privateKeyToAccount(generatePrivateKey()).address;
    await expect(user.client.signInWithEthereum({ address, signMessage: () => Promise.reject(refused) })).rejects.toBe(
      refused,
    );
    expect((await user.client.me()).principal).toBeNull();
  });

  it("keeps a guest's conversations when the guest signs in with Ethereum", async () => {
    const user = new User();
    await user.signInAnonymously();
    const guestToken = user.token;
    const first = await user.converse("first conversation as a guest");
    const second = await user.converse("second conversation as a guest");

    const account = privateKeyToAccount(generatePrivateKey());
    const result = await user.signInWithEthereum(account); // sent with the guest's token
    expect(result.movedSessions).toBe(2);
    const ids = (await user.allSessions()).map((s) => s.sessionId);
    expect(ids).toEqual([second, first]);

    // The same history, now under the address; the guest's token is spent.
    const { chat, recorder } = user.chat({ sessionId: first });
    chat.connect();
    await recorder.until(
      () => recorder.latest.some((m) => m.content === "You said: first conversation as a guest"),
      "the moved history",
    );
    const guest = new ChatClient({ backendUrl: authBackendUrl, token: guestToken ?? "" });
    expect(await failure(guest.listSessions())).toMatchObject({ code: "unauthorized", status: 401 });
  });

  it("signOut revokes the token: the next request answers 401", async () => {
    const user = new User();
    await user.signInAnonymously();
    await user.converse("before signing out");
    await user.client.signOut();

    expect(await failure(user.client.listSessions())).toMatchObject({ code: "unauthorized", status: 401 });
    expect((await user.client.me()).principal).toBeNull();
    const { chat, recorder } = user.chat();
    chat.connect();
    await recorder.until(() => recorder.errors.length > 0, "an error");
    expect(recorder.errors[0]).toMatchObject({ code: "unauthorized", status: 401 });
    await recorder.until(() => recorder.status === "disconnected", "the stream stops");
    expect(await chat.sendMessage("after signing out")).toBe(false);
    expect(recorder.errors.at(-1)).toMatchObject({ code: "unauthorized" });
  });
});

describe("my conversations", () => {
  it("renames a conversation: the list and the live state show the new title", async () => {
    const user = new User();
    await user.signInAnonymously();
    const { chat, recorder } = user.chat();
    chat.connect();
    expect(await chat.sendMessage("tell me about blocks")).toBe(true);
    await recorder.until(() => chat.getState().title === "tell me about blocks", "the first title");

    const state = await user.client.renameSession(chat.getSessionId(), "  Blocks   explained ");
    expect(state.title).toBe("Blocks explained");
    await recorder.until(() => chat.getState().title === "Blocks explained", "the new title on the stream");
    const { sessions } = await user.client.listSessions();
    expect(sessions.map((s) => s.title)).toEqual(["Blocks explained"]);
  });

  it("pages through the list, newest first, one at a time", async () => {
    const user = new User();
    await user.signInAnonymously();
    const ids: string[] = [];
    for (const text of ["one", "two", "three"]) ids.push(await user.converse(`conversation ${text}`));

    const page = await user.client.listSessions({ limit: 1 });
    expect(page.sessions).toHaveLength(1);
    expect(page.nextCursor).not.toBeNull();
    const walked = await user.allSessions(1);
    expect(walked.map((s) => s.sessionId)).toEqual([...ids].reverse());
    expect(walked.map((s) => s.title)).toEqual(["conversation three", "conversation two", "conversation one"]);
    expect(await failure(user.client.listSessions({ cursor: "not-a-cursor" }))).toMatchObject({ status: 400 });
  });

  it("creates and deletes conversations", async () => {
    const user = new User();
    await user.signInAnonymously();
    const created = await user.client.createSession();
    const kept = await user.converse("keep this one");
    await user.converse("hello", created);
    expect((await user.allSessions()).map((s) => s.sessionId).sort()).toEqual([created, kept].sort());

    await user.client.deleteSession(created);
    expect((await user.allSessions()).map((s) => s.sessionId)).toEqual([kept]);
    expect(await failure(user.client.deleteSession(created))).toMatchObject({ code: "session_not_found", status: 404 });
  });

  it("another user's conversation id is unknown to me", async () => {
    const alice = new User();
    const bob = new User();
    await alice.signInWithEthereum(privateKeyToAccount(generatePrivateKey()));
    await bob.signInAnonymously();
    const id = await alice.converse("alice's secret plan");

    expect(await failure(bob.client.renameSession(id, "mine now"))).toMatchObject({ code: "session_not_found", status: 404 });
    expect(await failure(bob.client.deleteSession(id))).toMatchObject({ code: "session_not_found", status: 404 });
    expect((await bob.client.listSessions()).sessions).toEqual([]);

    // Following the id shows Bob an empty conversation; what he writes there is his own.
    const { chat, recorder } = bob.chat({ sessionId: id });
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");
    expect(chat.getState().messages).toEqual([]);
    await chat.interrupt();
    expect(recorder.errors.at(-1)).toMatchObject({ code: "session_not_found", status: 404 });
    expect(await chat.sendMessage("bob's own words")).toBe(true);
    await recorder.until(() => recorder.agentReply?.content === "You said: bob's own words", "Bob's reply");
    expect(recorder.latest.map((m) => m.content).join(" ")).not.toContain("secret plan");

    const [aliceList, bobList] = await Promise.all([alice.client.listSessions(), bob.client.listSessions()]);
    expect(aliceList.sessions.map((s) => s.title)).toEqual(["alice's secret plan"]);
    expect(bobList.sessions.map((s) => s.title)).toEqual(["bob's own words"]);
  });
});

describe("without sign-in (AUTH=none)", () => {
  it("says so, and has no list of conversations", async () => {
    const client = new ChatClient({ backendUrl });
    expect(await client.me()).toEqual({ principal: null, methods: ["none"], expiresAt: null });
    expect(await failure(client.listSessions())).toMatchObject({ code: "auth_method_disabled", status: 404 });
    expect(await failure(client.signInAnonymously())).toMatchObject({ status: 404 });
  });
});
