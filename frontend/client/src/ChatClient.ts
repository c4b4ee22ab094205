import { buildSiweMessage } from "./siwe.js";
import { fromServerState } from "./state.js";
import { Transport } from "./transport.js";
import type {
  AuthMethod,
  ChatClientConfig,
  ListSessionsOptions,
  Me,
  SessionPage,
  SessionState,
  SignInResult,
  SiweSignInOptions,
  WalletAccount,
} from "./types.js";

/** The server's JSON of a sign-in (`TokenResponse`). */
interface TokenJson {
  token: string;
  principal: string;
  expires_at: string;
  moved_sessions?: number;
}

/** The server's JSON of `POST /api/auth/siwe/nonce`. */
interface NonceJson {
  nonce: string;
  domain: string;
  uri: string;
  chain_id: number;
  expires_at: string;
}

/** One entry of `GET /api/sessions`, as sent. */
interface SummaryJson {
  session_id: string;
  title: string | null;
  created_at: string;
  last_active_at: string;
  message_count: number;
  is_processing: boolean;
}

/**
 * The calls around the live conversation: who am I, signing in and out, my list of
 * conversations (list, create, rename, delete) and the wallet I am connected with in one of
 * them. It holds no state; the ChatManager follows one conversation. Give both the same
 * `backendUrl`, `token` and `credentials`.
 * Every failure throws a `ChatRequestError` with the server's `code` (e.g.
 * `unauthorized`, `session_not_found`, `auth_method_disabled`, `siwe_signature`,
 * `rate_limited`).
 *
 * ```ts
 * const client = new ChatClient();
 * const me = await client.me();
 * if (me.principal === null && me.methods.includes("anonymous")) await client.signInAnonymously();
 * const { sessions } = await client.listSessions();
 * ```
 */
export class ChatClient {
  private readonly transport: Transport;

  /** @param config the server and the credentials to send (all optional; as for ChatManager) */
  constructor(config: ChatClientConfig = {}) {
    this.transport = new Transport(config);
  }

  // ---- signing in ------------------------------------------------------------------

  /** Who the credentials name and how one can sign in here. Never fails for lack of sign-in. */
  async me(): Promise<Me> {
    const body = await this.transport.json<{ principal: string | null; methods: AuthMethod[]; expires_at: string | null }>(
      "GET",
      "/api/auth/me",
    );
    return { principal: body.principal, methods: body.methods, expiresAt: body.expires_at };
  }

  /** Signs in as a fresh anonymous principal (`anon:…`); a later Ethereum sign-in keeps its conversations. */
  async signInAnonymously(): Promise<SignInResult> {
    return signedIn(await this.transport.json<TokenJson>("POST", "/api/auth/anonymous"));
  }

  /**
   * Signs in as an Ethereum account (EIP-4361): asks the server for a nonce, builds the
   * message, has `signMessage` sign it and sends both. Signed in anonymously before (by
   * token or cookie), that principal's conversations move to the address.
   */
  async signInWithEthereum(options: SiweSignInOptions): Promise<SignInResult> {
    const nonce = await this.transport.json<NonceJson>("POST", "/api/auth/siwe/nonce");
    const message = buildSiweMessage({
      domain: nonce.domain,
      address: options.address,
      uri: nonce.uri,
      chainId: options.chainId ?? nonce.chain_id,
      nonce: nonce.nonce,
      issuedAt: new Date(),
      ...(options.statement === undefined ? {} : { statement: options.statement }),
    });
    const signature = await options.signMessage(message);
    return signedIn(await this.transport.json<TokenJson>("POST", "/api/auth/siwe", { message, signature }));
  }

  /** Revokes the token (every worker refuses it from now on) and clears the cookie. */
  async signOut(): Promise<void> {
    await this.transport.json<undefined>("POST", "/api/auth/logout");
  }

  // ---- my conversations ------------------------------------------------------------

  /**
   * A page of my conversations, most recently active first. Needs sign-in: under
   * AUTH=none nobody owns conversations and it throws `auth_method_disabled`.
   */
  async listSessions(options: ListSessionsOptions = {}): Promise<SessionPage> {
    const query = new URLSearchParams();
    if (options.cursor) query.set("cursor", options.cursor);
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    const search = query.toString() === "" ? "" : `?${query.toString()}`;
    const body = await this.transport.json<{ sessions: SummaryJson[]; next_cursor: string | null }>(
      "GET",
      `/api/sessions${search}`,
    );
    return {
      sessions: body.sessions.map((s) => ({
        sessionId: s.session_id,
        title: s.title,
        createdAt: s.created_at,
        lastActiveAt: s.last_active_at,
        messageCount: s.message_count,
        isProcessing: s.is_processing,
      })),
      nextCursor: body.next_cursor,
    };
  }

  /** Creates an empty conversation under a server-made id and returns that id. */
  async createSession(): Promise<string> {
    const body = await this.transport.json<{ session_id: string }>("POST", "/api/sessions");
    return body.session_id;
  }

  /** Renames a conversation; resolves to its state, with the new `title`. */
  async renameSession(sessionId: string, title: string): Promise<SessionState> {
    const state = await this.transport.json<Partial<SessionState>>("PATCH", sessionPath(sessionId), { title });
    return fromServerState(state, sessionId);
  }

  /** Deletes a conversation; a ChatManager following it sees it empty. */
  async deleteSession(sessionId: string): Promise<void> {
    await this.transport.json<undefined>("DELETE", sessionPath(sessionId));
  }

  // ---- the user's wallet -----------------------------------------------------------

  /**
   * Tells the server which wallet account and chain the user is on in a conversation
   * (`address: null`: the wallet disconnected). The server simulates the transactions it
   * proposes from that account, and its tools default to it. Creates the conversation if
   * it is new. Resolves to the conversation's state, with `wallet_address` (EIP-55) and
   * `wallet_chain_id`. A malformed address, or a mixed-case one whose EIP-55 checksum is
   * wrong (a typo), throws `invalid_request`.
   */
  async reportWallet(sessionId: string, wallet: WalletAccount): Promise<SessionState> {
    const state = await this.transport.json<Partial<SessionState>>("POST", "/api/wallet/account", {
      session_id: sessionId,
      address: wallet.address,
      chain_id: wallet.chainId ?? null,
    });
    return fromServerState(state, sessionId);
  }
}

function sessionPath(sessionId: string): string {
  return `/api/sessions/${encodeURIComponent(sessionId)}`;
}

function signedIn(body: TokenJson): SignInResult {
  return {
    principal: body.principal,
    expiresAt: body.expires_at,
    movedSessions: body.moved_sessions ?? 0,
    token: body.token,
  };
}
