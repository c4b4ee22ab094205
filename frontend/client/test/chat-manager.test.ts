/**
 * ChatManager against the real server (scripted model), started by global-setup.ts.
 * Every wait is on an event (a callback, a request, bytes on a stream), never a sleep.
 */
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";

import { ChatManager, type ChatManagerConfig, type ChatManagerEventHandlers } from "../src/index.js";
import { freePort } from "./global-setup.js";
import { MemoryStorage, Recorder, TappedFetch, UUID_V4, serverState } from "./helpers.js";

const backendUrl = inject("backendUrl");
const managers: ChatManager[] = [];

/** A manager for this test (disconnected afterwards), with a recorder and a tapped fetch. */
function setup(config: Partial<ChatManagerConfig> = {}) {
  const recorder = new Recorder();
  const tap = new TappedFetch();
  const chat = track(new ChatManager({ backendUrl, reconnectDelay: 50, fetch: tap.fetch, ...config }, recorder.handlers));
  return { chat, recorder, tap };
}

function track(manager: ChatManager): ChatManager {
  managers.push(manager);
  return manager;
}

afterEach(() => {
  for (const manager of managers.splice(0)) manager.disconnect();
});

/** A fresh session id the server has not seen. */
function uniqueId(name: string): string {
  return `${name}-${crypto.randomUUID()}`;
}

describe("session ids", () => {
  it("generates a UUID v4 per manager, unique across managers", () => {
    const ids = Array.from({ length: 200 }, () => track(new ChatManager({ backendUrl })).getSessionId());
    for (const id of ids) expect(id).toMatch(UUID_V4);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("uses a provided id for the stream and for writes", async () => {
    const sessionId = uniqueId("provided");
    const { chat, recorder, tap } = setup({ sessionId });
    expect(chat.getSessionId()).toBe(sessionId);
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");
    expect(tap.eventRequests[0]?.url).toBe(`${backendUrl}/api/sessions/${sessionId}/events`);

    expect(await chat.sendMessage("hi")).toBe(true);
    const state = await serverState(backendUrl, sessionId);
    expect(state.session_id).toBe(sessionId);
    expect(state.messages[0]?.content).toBe("hi");
  });

  it("sends the session id in every request, as body field and X-Session-Id header", async () => {
    const sessionId = uniqueId("every-request");
    const { chat, recorder, tap } = setup({ sessionId });
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");

    expect(await chat.sendMessage("hello")).toBe(true);
    await recorder.until(() => recorder.processing.at(-1) === false && recorder.processing.length > 0, "turn over");
    expect(await chat.sendNetworkSwitchRequest("sepolia")).toMatchObject({ success: true });
    await recorder.until(() => chat.getState().network === "sepolia", "the stream shows the new network");
    expect(await chat.sendSystemMessage("a note from the app")).toBe(true);
    await chat.interrupt();

    const posts = tap.calls.filter((c) => c.method === "POST");
    expect(posts.map((c) => new URL(c.url).pathname)).toEqual([
      "/api/chat",
      "/api/mcp-command",
      "/api/system",
      "/api/interrupt",
    ]);
    for (const call of tap.calls) expect(call.headers.get("X-Session-Id")).toBe(sessionId);
    for (const call of posts) expect(call.body?.session_id).toBe(sessionId);

    // The server applied all of it to that session, and to no other.
    const state = await serverState(backendUrl, sessionId);
    expect(state.network).toBe("sepolia");
    expect(state.messages.map((m) => m.content)).toContain("a note from the app");
    const other = setup();
    expect(await other.chat.sendMessage("elsewhere")).toBe(true);
    expect((await serverState(backendUrl, other.chat.getSessionId())).network).toBe("testnet");
  });

  it("setSessionId reconnects and shows the other session's messages", async () => {
    const first = uniqueId("first");
    const second = uniqueId("second");
    const writer = setup({ sessionId: second });
    expect(await writer.chat.sendMessage("message in the second session")).toBe(true);

    const { chat, recorder, tap } = setup({ sessionId: first });
    chat.connect();
    expect(await chat.sendMessage("message in the first session")).toBe(true);
    await recorder.until(() => recorder.latest.some((m) => m.content === "message in the first session"), "first");

    chat.setSessionId(second);
    expect(chat.getSessionId()).toBe(second);
    await recorder.until(
      () => recorder.latest.some((m) => m.content === "message in the second session"),
      "the second session's messages",
    );
    expect(recorder.latest.map((m) => m.content)).not.toContain("message in the first session");
    expect(tap.eventRequests.at(-1)?.url).toBe(`${backendUrl}/api/sessions/${second}/events`);
    await recorder.until(() => recorder.status === "connected", "connected again");
    expect(recorder.statuses).toContain("connecting");
  });

  it("newSession() starts an empty conversation under a fresh id", async () => {
    const { chat, recorder } = setup();
    const before = chat.getSessionId();
    chat.connect();
    expect(await chat.sendMessage("old conversation")).toBe(true);
    await recorder.until(() => recorder.latest.length > 0, "a message");

    const fresh = chat.newSession();
    expect(fresh).toMatch(UUID_V4);
    expect(fresh).not.toBe(before);
    expect(chat.getSessionId()).toBe(fresh);
    await recorder.until(() => recorder.status === "connected" && recorder.latest.length === 0, "an empty chat");
    expect(await chat.sendMessage("new conversation")).toBe(true);
    const state = await serverState(backendUrl, fresh);
    expect(state.messages.filter((m) => m.sender === "user").map((m) => m.content)).toEqual(["new conversation"]);
  });

  describe("persistSession", () => {
    let storage: MemoryStorage;
    beforeEach(() => {
      storage = new MemoryStorage();
      (globalThis as { localStorage?: Storage }).localStorage = storage;
    });
    afterEach(() => {
      delete (globalThis as { localStorage?: Storage }).localStorage;
    });

    it("keeps the session across managers (a reload) and continues the conversation", async () => {
      const before = setup({ persistSession: true });
      const id = before.chat.getSessionId();
      expect(storage.getItem("chatbot.sessionId")).toBe(id);
      expect(await before.chat.sendMessage("remember me")).toBe(true);
      before.chat.disconnect();

      const after = setup({ persistSession: true });
      expect(after.chat.getSessionId()).toBe(id);
      after.chat.connect();
      await after.recorder.until(
        () => after.recorder.latest.some((m) => m.content === "remember me"),
        "the earlier conversation",
      );

      const fresh = after.chat.newSession();
      expect(storage.getItem("chatbot.sessionId")).toBe(fresh);
      expect(setup({ persistSession: true }).chat.getSessionId()).toBe(fresh);
      expect(setup({ persistSession: false }).chat.getSessionId()).not.toBe(fresh);
    });

    it("works without localStorage, and ignores a stored id the server would refuse", () => {
      delete (globalThis as { localStorage?: Storage }).localStorage;
      expect(setup({ persistSession: true }).chat.getSessionId()).toMatch(UUID_V4);
      (globalThis as { localStorage?: Storage }).localStorage = storage;
      storage.setItem("chatbot.sessionId", "not a valid id!");
      expect(setup({ persistSession: true }).chat.getSessionId()).toMatch(UUID_V4);
    });
  });
});

describe("streaming", () => {
  it("streams a reply: the agent message grows, typing turns on then off", async () => {
    const { chat, recorder } = setup();
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");
    expect(await chat.sendMessage("one two three four five")).toBe(true);
    await recorder.until(() => recorder.processing.at(-1) === false, "turn over");

    const final = "You said: one two three four five";
    expect(recorder.agentReply?.content).toBe(final);
    expect(recorder.agentReply?.status).toBe("complete");
    const seen = new Set(recorder.messages.map((list) => list.find((m) => m.sender === "agent")?.content ?? ""));
    expect(seen.size).toBeGreaterThan(3); // it grew in steps, not in one piece
    expect(recorder.typing).toEqual([true, false]);
    expect(recorder.processing).toEqual([true, false]);
    const state = await serverState(backendUrl, chat.getSessionId());
    expect(chat.getState().messages).toEqual(state.messages);
  });

  it("resumes after a broken connection with no lost or doubled text", async () => {
    const { chat, recorder, tap } = setup();
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");
    const words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima";
    expect(await chat.sendMessage(words)).toBe(true);
    await recorder.until(() => (recorder.agentReply?.content.split(" ").length ?? 0) >= 4, "a partial reply");

    const cutAt = recorder.agentReply?.content ?? "";
    tap.streams[0]?.kill();
    await recorder.until(() => recorder.processing.at(-1) === false, "turn over", 15_000);

    expect(cutAt.length).toBeLessThan(`You said: ${words}`.length); // cut mid-reply
    expect(recorder.statuses).toEqual(["connecting", "connected", "reconnecting", "connected"]);
    const resumed = tap.eventRequests[1];
    expect(resumed?.headers.get("Last-Event-ID")).toMatch(/^\d+$/);
    expect(tap.streams[1]?.text).not.toContain("event: snapshot"); // a replay, not a reset

    const contents = recorder.messages.map((list) => list.find((m) => m.sender === "agent")?.content ?? "");
    contents.forEach((content, i) => {
      if (i > 0) expect(content.startsWith(contents[i - 1] ?? "")).toBe(true); // only ever grows
    });
    const state = await serverState(backendUrl, chat.getSessionId());
    expect(recorder.agentReply?.content).toBe(`You said: ${words}`);
    expect(chat.getState().messages).toEqual(state.messages);
  });

  it("treats a stream without keep-alives as dead and reconnects", async () => {
    const { chat, recorder, tap } = setup({ keepAliveTimeout: 1500 });
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");
    // The server sends `: keep-alive` every 0.5 s here: they keep a quiet stream alive.
    await tap.until(() => (tap.streams[0]?.keepAlives ?? 0) >= 5, "five keep-alives");
    expect(tap.eventRequests).toHaveLength(1);
    expect(recorder.status).toBe("connected");

    tap.streams[0]?.stall(); // open, but nothing gets through any more
    await tap.until(() => tap.eventRequests.length === 2, "a second connection");
    await recorder.until(() => recorder.status === "connected", "connected again");
    expect(recorder.statuses).toEqual(["connecting", "connected", "reconnecting", "connected"]);
    expect(await chat.sendMessage("still there?")).toBe(true);
    await recorder.until(() => recorder.agentReply?.content === "You said: still there?", "the reply");
  });
  it("follows a deleted session: the stream reconnects and shows it empty", async () => {
    const { chat, recorder } = setup();
    chat.connect();
    expect(await chat.sendMessage("soon gone")).toBe(true);
    await recorder.until(() => recorder.processing.at(-1) === false, "turn over");

    const response = await fetch(`${backendUrl}/api/sessions/${chat.getSessionId()}`, { method: "DELETE" });
    expect(response.status).toBe(204);
    await recorder.until(() => recorder.latest.length === 0, "an empty conversation");
    await recorder.until(() => recorder.status === "connected", "connected again");
    expect(recorder.errors).toEqual([]);
  });
});

describe("errors", () => {
  it("backs off with growing delays, then reports disconnected", async () => {
    const closedPort = await freePort();
    const statuses: string[] = [];
    const errors: string[] = [];
    const handlers: ChatManagerEventHandlers = {
      onConnectionChange: (status) => statuses.push(status),
      onError: (error) => errors.push(error.code),
    };
    const tap = new TappedFetch();
    const chat = track(
      new ChatManager(
        { backendUrl: `http://127.0.0.1:${String(closedPort)}`, reconnectAttempts: 3, reconnectDelay: 100, fetch: tap.fetch },
        handlers,
      ),
    );
    const gaveUp = new Promise<void>((done) => {
      handlers.onError = (error) => {
        errors.push(error.code);
        done();
      };
    });
    chat.connect();
    await gaveUp;

    expect(statuses).toEqual(["connecting", "reconnecting", "disconnected"]);
    expect(errors).toEqual(["connection_failed"]);
    const times = tap.calls.map((c) => c.at);
    expect(times).toHaveLength(4); // the first try and three retries
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThan(gaps[0] ?? 0);
    expect(gaps[2]).toBeGreaterThan(gaps[1] ?? 0);
    expect(chat.getConnectionStatus()).toBe("disconnected");
  });

  it("passes session_busy (409) from a second message during a turn to onError", async () => {
    const { chat, recorder } = setup();
    chat.connect();
    expect(await chat.sendMessage("a long enough message to keep the agent busy for a while")).toBe(true);
    expect(await chat.sendMessage("and another one")).toBe(false);
    expect(recorder.errors).toEqual([
      expect.objectContaining({ code: "session_busy", status: 409 }) as unknown,
    ]);
    expect(recorder.errors[0]?.message).not.toBe("");
  });

  it("passes other HTTP errors on with the server's code", async () => {
    const { chat, recorder } = setup();
    await chat.interrupt(); // a session that does not exist yet
    expect(recorder.errors).toEqual([expect.objectContaining({ code: "session_not_found", status: 404 }) as unknown]);
    const result = await chat.sendNetworkSwitchRequest("atlantis");
    expect(result.success).toBe(false);
    expect(recorder.errors[1]).toMatchObject({ code: "unknown_network", status: 400 });
  });

  it("rejects empty and too long messages without a request", async () => {
    const { chat, recorder, tap } = setup({ maxMessageLength: 10 });
    expect(await chat.sendMessage("")).toBe(false);
    expect(await chat.sendMessage("   \n")).toBe(false);
    expect(await chat.sendMessage("x".repeat(11))).toBe(false);
    expect(recorder.errors.map((e) => e.code)).toEqual(["empty_message", "empty_message", "message_too_long"]);
    expect(tap.calls).toHaveLength(0);
    expect(await chat.sendMessage("😀".repeat(10))).toBe(true); // ten characters, as the server counts
  });
});

describe("wallet", () => {
  it("shows a proposed transaction and reports the wallet's answer", async () => {
    const { chat, recorder, tap } = setup();
    expect(await chat.sendTransactionResult(true, "0x1")).toBe(false);
    expect(recorder.errors.map((e) => e.code)).toEqual(["no_pending_transaction"]);

    chat.connect();
    const args = { to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", value: "1000", data: "0x", description: "Pay Bob" };
    expect(await chat.sendMessage(`/tool send_transaction_to_wallet ${JSON.stringify(args)}`)).toBe(true);
    await recorder.until(() => recorder.wallet.at(-1) != null, "a wallet request");
    const tx = recorder.wallet.at(-1);
    expect(tx).toMatchObject({ to: args.to, value: "1000", description: "Pay Bob", network: "testnet" });

    const hash = `0x${"ab".repeat(32)}`;
    await recorder.until(() => !chat.getState().is_processing, "the turn waits for the wallet");
    expect(await chat.sendTransactionResult(true, hash)).toBe(true);
    await recorder.until(() => recorder.wallet.at(-1) === null, "the request resolved");
    expect(tap.calls.at(-1)?.body).toMatchObject({ tx_id: tx?.id, status: "sent", hash });
    const state = await serverState(backendUrl, chat.getSessionId());
    expect(state.wallet_tx).toBeNull();
    expect(state.pending_wallet_tx).toBeNull();
    expect(await chat.sendTransactionResult(false, undefined, "too late")).toBe(false);
  });
});
