/**
 * `ChatClient.reportWallet`: the request it makes and the state it resolves to (against a
 * stub `fetch`), then against the real servers started by global-setup.ts.
 */
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterEach, describe, expect, inject, it } from "vitest";

import { ChatClient, ChatManager, ChatRequestError, type SessionState } from "../src/index.js";
import { Recorder, serverState } from "./helpers.js";

const backendUrl = inject("backendUrl");
const authBackendUrl = inject("authBackendUrl");
const ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const managers: ChatManager[] = [];

afterEach(() => {
  for (const manager of managers.splice(0)) manager.disconnect();
});

/** A ChatClient whose requests are recorded and answered with `answer` as JSON. */
function stubbed(answer: unknown, status = 200) {
  const requests: Request[] = [];
  const client = new ChatClient({
    backendUrl: "http://chat.test/",
    fetch: (input, init) => {
      requests.push(new Request(input, init));
      return Promise.resolve(Response.json(answer, { status }));
    },
  });
  return { client, requests };
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

describe("reportWallet, the request", () => {
  it("posts the session, the account and the chain, and resolves to the state", async () => {
    const answer = { session_id: "s-1", seq: 7, network: "testnet", wallet_address: ACCOUNT, wallet_chain_id: 1 };
    const { client, requests } = stubbed(answer);
    const state = await client.reportWallet("s-1", { address: ACCOUNT.toLowerCase(), chainId: 1 });

    expect(requests).toHaveLength(1);
    const [request] = requests;
    expect(request?.method).toBe("POST");
    expect(request?.url).toBe("http://chat.test/api/wallet/account");
    expect(request?.headers.get("Content-Type")).toBe("application/json");
    expect(await request?.json()).toEqual({ session_id: "s-1", address: ACCOUNT.toLowerCase(), chain_id: 1 });
    expect(state).toMatchObject({ ...answer, messages: [], queued: [], wallet_tx: null });
  });

  it("reports a disconnected wallet as nulls", async () => {
    const { client, requests } = stubbed({ session_id: "s-1", seq: 8, wallet_address: null, wallet_chain_id: null });
    const state = await client.reportWallet("s-1", { address: null });
    expect(await requests[0]?.json()).toEqual({ session_id: "s-1", address: null, chain_id: null });
    expect(state).toMatchObject({ wallet_address: null, wallet_chain_id: null });
  });

  it("fills in what an older server's answer lacks", async () => {
    const { client } = stubbed({ session_id: "s-1", seq: 2, network: "testnet" });
    const state: SessionState = await client.reportWallet("s-1", { address: ACCOUNT, chainId: 1 });
    expect(state).toMatchObject({ session_id: "s-1", seq: 2, wallet_address: null, wallet_chain_id: null });
  });

  it("throws the server's error", async () => {
    const { client } = stubbed({ error: { code: "invalid_request", message: "bad checksum" } }, 400);
    const error = await failure(client.reportWallet("s-1", { address: ACCOUNT, chainId: 1 }));
    expect(error).toMatchObject({ code: "invalid_request", message: "bad checksum", status: 400 });
  });
});

describe("reportWallet, against the server", () => {
  it("remembers the account (EIP-55) and chain, in the answer and on the stream, until it disconnects", async () => {
    const sessionId = `wallet-${crypto.randomUUID()}`;
    const recorder = new Recorder();
    const chat = new ChatManager({ backendUrl, sessionId, reconnectDelay: 50 }, recorder.handlers);
    managers.push(chat);
    chat.connect();
    await recorder.until(() => recorder.status === "connected", "connected");

    const client = new ChatClient({ backendUrl });
    const state = await client.reportWallet(sessionId, { address: ACCOUNT.toLowerCase(), chainId: 31337 });
    expect(state).toMatchObject({ session_id: sessionId, wallet_address: ACCOUNT, wallet_chain_id: 31337 });
    expect(await serverState(backendUrl, sessionId)).toMatchObject({ wallet_address: ACCOUNT, wallet_chain_id: 31337 });
    await recorder.until(() => chat.getState().wallet_address === ACCOUNT, "the account on the stream");
    expect(chat.getState().wallet_chain_id).toBe(31337);

    const gone = await client.reportWallet(sessionId, { address: null, chainId: null });
    expect(gone).toMatchObject({ wallet_address: null, wallet_chain_id: null });
    await recorder.until(() => chat.getState().wallet_address === null, "the account gone on the stream");
  });

  it("creates the conversation on first use", async () => {
    const sessionId = `wallet-new-${crypto.randomUUID()}`;
    const state = await new ChatClient({ backendUrl }).reportWallet(sessionId, { address: ACCOUNT, chainId: 1 });
    expect(state).toMatchObject({ session_id: sessionId, messages: [], wallet_address: ACCOUNT });
  });

  it("refuses what is not an address at all", async () => {
    const client = new ChatClient({ backendUrl });
    const sessionId = `wallet-bad-${crypto.randomUUID()}`;
    for (const address of ["0x1234", "vitalik.eth"]) {
      const error = await failure(client.reportWallet(sessionId, { address, chainId: 1 }));
      expect(error.code).toBe("invalid_request");
      expect([400, 422]).toContain(error.status);
    }
  });

  it("signed in with Ethereum and no wallet reported, the state names the signed-in address", async () => {
    const account = privateKeyToAccount(generatePrivateKey());
    let token: string | null = null;
    const client = new ChatClient({ backendUrl: authBackendUrl, token: () => token });
    token = (
      await client.signInWithEthereum({
        address: account.address,
        signMessage: (message) => account.signMessage({ message }),
      })
    ).token;
    const sessionId = await client.createSession();
    const state = await client.reportWallet(sessionId, { address: null });
    expect(state).toMatchObject({ wallet_address: account.address, wallet_chain_id: null });
  });
});
