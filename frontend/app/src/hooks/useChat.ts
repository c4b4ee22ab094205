import { useCallback, useEffect, useRef, useState } from "react";
import { ChatManager, isValidSessionId } from "@chatbot/client";
import { BACKEND_URL, CREDENTIALS, MAX_MESSAGE_LENGTH } from "../config";
import type {
  ChatConfig,
  ChatError,
  ChatHandlers,
  ChatMessage,
  ConnectionStatus,
  SessionState,
  WalletTx,
} from "../types";

export interface ChatView {
  messages: ChatMessage[];
  connection: ConnectionStatus;
  processing: boolean;
  typing: boolean;
  pendingTx: WalletTx | null;
  state: SessionState | null;
  error: ChatError | null;
  sessionId: string | null;
  /** Sends a message; resolves to true once the server has accepted it. */
  send: (text: string) => Promise<boolean>;
  /** Stops the running turn; resolves once it has ended (or the request failed). */
  interrupt: () => Promise<void>;
  /** Resolves to true once the server has switched this session's network. */
  switchNetwork: (network: string) => Promise<boolean>;
  reportTransaction: (success: boolean, hash?: string, error?: string) => Promise<void>;
  /** Starts an empty conversation under a fresh id. */
  newChat: () => void;
  /** Shows another conversation (one of mine from the list). */
  openSession: (sessionId: string) => void;
  dismissError: () => void;
}

function describe(err: unknown): ChatError {
  return { code: "client_error", message: err instanceof Error ? err.message : String(err) };
}

/** Whether a sign-in from `previous` to `next` took the conversations along (guest to address). */
function keepsConversations(previous: string, next: string): boolean {
  return previous.startsWith("anon:") && next.startsWith("eth:");
}

/**
 * Wraps one `ChatManager` (persisted session, typed event stream) for the app.
 *
 * @param identity who the requests are from (the principal, or "none" without sign-in);
 *   null while that is not settled: the stream waits. When it changes, the stream
 *   reopens with the new credentials (the sign-in cookie), on a new conversation unless
 *   a guest signed in with Ethereum (the guest's conversations moved to the address).
 */
export function useChat(identity: string | null): ChatView {
  const managerRef = useRef<ChatManager | null>(null);
  const errorCount = useRef(0);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [connection, setConnection] = useState<ConnectionStatus>("disconnected");
  const [processing, setProcessing] = useState(false);
  const [typing, setTyping] = useState(false);
  const [pendingTx, setPendingTx] = useState<WalletTx | null>(null);
  const [state, setState] = useState<SessionState | null>(null);
  const [error, setError] = useState<ChatError | null>(null);
  const [sessionId, setSessionId] = useState<string | null>(null);

  useEffect(() => {
    const config: Partial<ChatConfig> = {
      backendUrl: BACKEND_URL,
      maxMessageLength: MAX_MESSAGE_LENGTH,
      reconnectAttempts: 20,
      reconnectDelay: 1000,
      persistSession: true,
      credentials: CREDENTIALS,
    };
    const handlers: ChatHandlers = {
      // The client hands over a new array (and new message objects) on every change.
      onMessage: (msgs) => setMessages(msgs),
      onConnectionChange: (status) => setConnection(status),
      onError: (err) => {
        errorCount.current += 1;
        setError(err);
      },
      onTypingChange: (value) => setTyping(value),
      onWalletTransactionRequest: (tx) => setPendingTx(tx ?? null),
      onProcessingChange: (value) => setProcessing(value),
      onStateChange: (value) => {
        setState(value);
        setSessionId(value.session_id); // also when the manager itself switches
      },
    };
    // A conversation link (`?session=<id>`, from the sidebar) opens that conversation; the
    // parameter goes from the address bar so a reload shows whatever is in view then.
    const linked = new URLSearchParams(window.location.search).get("session");
    if (linked !== null && isValidSessionId(linked)) {
      config.sessionId = linked;
      window.history.replaceState(null, "", window.location.pathname + window.location.hash);
    }
    const manager = new ChatManager(config, handlers);
    managerRef.current = manager;
    setSessionId(manager.getSessionId());
    return () => {
      managerRef.current = null;
      manager.disconnect();
    };
  }, []);

  const previousIdentity = useRef<string | null>(null);
  useEffect(() => {
    const manager = managerRef.current;
    if (!manager) return;
    if (identity === null) {
      manager.disconnect();
      return;
    }
    const previous = previousIdentity.current;
    previousIdentity.current = identity;
    // The conversation in view was the previous user's (signed out, here or in another tab).
    if (previous !== null && previous !== identity && !keepsConversations(previous, identity)) {
      manager.newSession();
    }
    manager.connect();
  }, [identity]);

  // Signed in as someone new: an `unauthorized` from before no longer holds.
  const [lastIdentity, setLastIdentity] = useState(identity);
  if (identity !== lastIdentity) {
    setLastIdentity(identity);
    if (error?.code === "unauthorized") setError(null);
  }

  /**
   * Runs a client call. The client reports failures through `onError` and resolves to
   * `false` (or `{success: false}`); an exception it did not report is shown too.
   */
  const call = useCallback(async <T,>(fn: (m: ChatManager) => T | Promise<T>): Promise<T | undefined> => {
    const manager = managerRef.current;
    if (!manager) return undefined;
    const before = errorCount.current;
    try {
      return await fn(manager);
    } catch (err) {
      if (errorCount.current === before) setError(describe(err));
      return undefined;
    }
  }, []);

  const send = useCallback(
    async (text: string) => {
      setError(null);
      const ok = await call((m) => m.sendMessage(text));
      return ok === true;
    },
    [call],
  );

  const interrupt = useCallback(async () => {
    await call((m) => m.interrupt());
  }, [call]);

  const switchNetwork = useCallback(
    async (network: string) => {
      const result = await call((m) => m.sendNetworkSwitchRequest(network));
      return result?.success === true;
    },
    [call],
  );

  const reportTransaction = useCallback(
    async (success: boolean, hash?: string, err?: string) => {
      await call((m) => m.sendTransactionResult(success, hash, err));
    },
    [call],
  );

  const newChat = useCallback(() => {
    const manager = managerRef.current;
    if (!manager) return;
    setError(null);
    setSessionId(manager.newSession());
  }, []);

  const openSession = useCallback((id: string) => {
    const manager = managerRef.current;
    if (!manager) return;
    setError(null);
    manager.setSessionId(id);
    setSessionId(id);
  }, []);

  const dismissError = useCallback(() => setError(null), []);

  return {
    messages,
    connection,
    processing,
    typing,
    pendingTx,
    state,
    error,
    sessionId,
    send,
    interrupt,
    switchNetwork,
    reportTransaction,
    newChat,
    openSession,
    dismissError,
  };
}
