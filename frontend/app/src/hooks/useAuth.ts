import { useCallback, useEffect, useRef, useState } from "react";
import { ChatRequestError, type AuthMethod, type ChatError, type Me, type SiweSignInOptions } from "@chatbot/client";
import { api } from "../lib/api";
import { walletErrorMessage } from "../lib/walletUtils";

/** Where sign-in stands. */
export type AuthStatus =
  /** Asking the server (the chat waits). */
  | "loading"
  /** The server has no sign-in (AUTH=none): a session id is its own key. */
  | "none"
  /** Signed in as `principal`. */
  | "signed-in"
  /** The server wants a sign-in this app cannot make by itself (no anonymous guests). */
  | "signed-out";

export interface AuthView {
  status: AuthStatus;
  /** `anon:…`, `eth:0x…`, …; null unless signed in. */
  principal: string | null;
  /** A guest (an anonymous principal). */
  guest: boolean;
  /** The server accepts Sign-In with Ethereum. */
  siwe: boolean;
  /** The server lets anyone in as a guest. */
  anonymous: boolean;
  /** A sign-in or sign-out is under way. */
  busy: boolean;
  error: ChatError | null;
  /**
   * Signs in with an Ethereum account (a guest's conversations move to it); resolves to
   * true once signed in.
   */
  signInWithEthereum: (options: SiweSignInOptions) => Promise<boolean>;
  /** Signs out; as a guest again where the server allows guests. */
  signOut: () => Promise<void>;
  /** Asks the server again (after a 401: the sign-in ended elsewhere), signing in as a guest if allowed. */
  refresh: () => Promise<void>;
  dismissError: () => void;
}

const STATEMENT = "Sign in to chat with the Ethereum agent.";
/** Tabs of this app tell each other about sign-ins and sign-outs (they share the cookie). */
const CHANNEL = "chatbot.auth";

/** The server's error as it came; anything else (the wallet refused, …) under `code`. */
function asError(err: unknown, code: string): ChatError {
  return err instanceof ChatRequestError
    ? { code: err.code, message: err.message }
    : { code, message: walletErrorMessage(err) };
}

/**
 * Who this browser is signed in as. On load it asks `GET /api/auth/me`; signed out on a
 * server that allows guests, it signs in anonymously (the HttpOnly cookie carries it),
 * so the chat works at once and a later Ethereum sign-in keeps the conversations.
 */
export function useAuth(): AuthView {
  const [status, setStatus] = useState<AuthStatus>("loading");
  const [principal, setPrincipal] = useState<string | null>(null);
  const [methods, setMethods] = useState<AuthMethod[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ChatError | null>(null);
  const running = useRef<Promise<void> | null>(null);
  const tabs = useRef<BroadcastChannel | null>(null);
  /** Tells this app's other tabs that the sign-in changed (a channel does not hear itself). */
  const announce = useCallback(() => tabs.current?.postMessage("changed"), []);

  const settle = useCallback((next: string | null, allowed: AuthMethod[]) => {
    setMethods(allowed);
    setPrincipal(next);
    setStatus(allowed.includes("none") ? "none" : next === null ? "signed-out" : "signed-in");
  }, []);

  /** me(), then a guest sign-in when that is what it takes to chat. */
  const resolve = useCallback(async () => {
    let me: Me;
    try {
      me = await api.me();
    } catch (err) {
      // An older server (no /api/auth: 404) or none reachable: chat as without sign-in;
      // a 401 from the chat brings us back here.
      if (!(err instanceof ChatRequestError && err.status === 404)) setError(asError(err, "sign_in_failed"));
      settle(null, ["none"]);
      return;
    }
    if (me.principal !== null || !me.methods.includes("anonymous")) {
      settle(me.principal, me.methods);
      return;
    }
    try {
      settle((await api.signInAnonymously()).principal, me.methods);
    } catch (err) {
      // e.g. rate_limited: stay signed out (the chat waits) rather than retry in a loop.
      setError(asError(err, "sign_in_failed"));
      settle(null, me.methods);
    }
  }, [settle]);

  const refresh = useCallback(async () => {
    // One at a time: a burst of 401s must not sign in several guests.
    running.current ??= resolve().finally(() => {
      running.current = null;
    });
    await running.current;
  }, [resolve]);

  useEffect(() => {
    void refresh();
    if (typeof BroadcastChannel === "undefined") return;
    // Another tab signed in or out: the cookie changed under us, ask again.
    const channel = new BroadcastChannel(CHANNEL);
    channel.onmessage = () => void refresh();
    tabs.current = channel;
    return () => {
      tabs.current = null;
      channel.close();
    };
  }, [refresh]);

  const signInWithEthereum = useCallback(
    async (options: SiweSignInOptions) => {
      setBusy(true);
      setError(null);
      try {
        const result = await api.signInWithEthereum({ statement: STATEMENT, ...options });
        settle(result.principal, methods);
        announce();
        return true;
      } catch (err) {
        setError(asError(err, "wallet_error"));
        return false;
      } finally {
        setBusy(false);
      }
    },
    [methods, settle, announce],
  );

  const signOut = useCallback(async () => {
    setBusy(true);
    setError(null);
    try {
      await api.signOut();
    } catch (err) {
      setError(asError(err, "sign_out_failed"));
    }
    await refresh();
    announce();
    setBusy(false);
  }, [refresh, announce]);

  const dismissError = useCallback(() => setError(null), []);

  return {
    status,
    principal,
    guest: principal?.startsWith("anon:") ?? false,
    siwe: methods.includes("siwe"),
    anonymous: methods.includes("anonymous"),
    busy,
    error,
    signInWithEthereum,
    signOut,
    refresh,
    dismissError,
  };
}
