import { useCallback, useEffect, useRef, useState } from "react";
import { ChatRequestError, type ChatError } from "@chatbot/client";
import { api } from "../lib/api";
import { forgetConversation, loadConversations, rememberConversation } from "../lib/localConversations";

/** One entry of the sidebar. */
export interface Conversation {
  id: string;
  /** Its first words until renamed; null while empty. */
  title: string | null;
  /** A turn runs in it (as of the last listing). */
  processing: boolean;
}

/**
 * Where the list comes from: the server's list of my conversations (signed in), this
 * browser's memory (a server without sign-in), or nowhere yet (null).
 */
export type ConversationSource = "server" | "local" | null;

export interface ConversationsView {
  items: Conversation[];
  /** More of my conversations on the server than listed. */
  hasMore: boolean;
  error: ChatError | null;
  /** Lists the first page again (after a message, a new title, a sign-in). */
  refresh: () => void;
  loadMore: () => Promise<void>;
  /** Renames one; resolves to true once the server took the new title. */
  rename: (id: string, title: string) => Promise<boolean>;
  /** Deletes one on the server and from the list; resolves to true once it is gone. */
  remove: (id: string) => Promise<boolean>;
  /** Without sign-in: remembers the conversation in view (its title; `active`: it just had a message). */
  note: (id: string, title: string | null, active: boolean) => void;
  dismissError: () => void;
}

const PAGE = 50;

function localItems(): Conversation[] {
  return loadConversations().map((c) => ({ id: c.id, title: c.title, processing: false }));
}

function toError(err: unknown): ChatError {
  return err instanceof ChatRequestError
    ? { code: err.code, message: err.message }
    : { code: "client_error", message: err instanceof Error ? err.message : String(err) };
}

/**
 * The sidebar's conversations. `key` changes when the list must start over (another
 * principal signed in): answers to older requests are dropped.
 */
export function useConversations(source: ConversationSource, key: string | null): ConversationsView {
  const [items, setItems] = useState<Conversation[]>(() => (source === "local" ? localItems() : []));
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<ChatError | null>(null);
  // Bumped for each listing; a listing's answer is used only if nothing newer started.
  const listing = useRef(0);

  /** Lists a page (the first one for `from` null, replacing the list; else the next, appended). */
  const fetchPage = useCallback((from: string | null): Promise<void> => {
    const ticket = ++listing.current;
    return api.listSessions({ cursor: from, limit: PAGE }).then(
      (page) => {
        if (ticket !== listing.current) return;
        // Without a message it is no conversation yet (the network list, for one, makes
        // such a session on the server): it shows up once something is said in it.
        const fetched = page.sessions
          .filter((s) => s.messageCount > 0)
          .map((s) => ({ id: s.sessionId, title: s.title, processing: s.isProcessing }));
        setItems((current) => {
          if (from === null) return fetched;
          const seen = new Set(current.map((c) => c.id));
          return [...current, ...fetched.filter((c) => !seen.has(c.id))];
        });
        setCursor(page.nextCursor);
      },
      (err: unknown) => {
        if (ticket === listing.current) setError(toError(err));
      },
    );
  }, []);

  const showLocal = useCallback(() => setItems(localItems()), []);

  const refresh = useCallback(() => {
    if (source === "server") void fetchPage(null);
    else if (source === "local") showLocal();
  }, [source, fetchPage, showLocal]);

  // Another source or principal: start over (the server's list comes by the effect below).
  const [scope, setScope] = useState({ source, key });
  if (scope.source !== source || scope.key !== key) {
    setScope({ source, key });
    setCursor(null);
    setItems(source === "local" ? localItems() : []);
  }

  useEffect(() => {
    if (source === "server") void fetchPage(null);
    else listing.current += 1; // whatever was in flight belongs to the previous principal
  }, [source, key, fetchPage]);

  const loadMore = useCallback(async () => {
    if (source === "server" && cursor !== null) await fetchPage(cursor);
  }, [source, cursor, fetchPage]);

  const rename = useCallback(
    async (id: string, title: string) => {
      try {
        const state = await api.renameSession(id, title);
        if (source === "local") rememberConversation(id, state.title, false);
        setItems((current) => current.map((c) => (c.id === id ? { ...c, title: state.title } : c)));
        return true;
      } catch (err) {
        setError(toError(err));
        return false;
      }
    },
    [source],
  );

  const remove = useCallback(
    async (id: string) => {
      try {
        await api.deleteSession(id);
      } catch (err) {
        // Already gone (deleted elsewhere, or it never reached the server): drop it all the same.
        if (!(err instanceof ChatRequestError && err.code === "session_not_found")) {
          setError(toError(err));
          return false;
        }
      }
      if (source === "local") forgetConversation(id);
      setItems((current) => current.filter((c) => c.id !== id));
      return true;
    },
    [source],
  );

  const note = useCallback(
    (id: string, title: string | null, active: boolean) => {
      if (source !== "local") return;
      rememberConversation(id, title, active);
      showLocal();
    },
    [source, showLocal],
  );

  const dismissError = useCallback(() => setError(null), []);

  return { items, hasMore: cursor !== null, error, refresh, loadMore, rename, remove, note, dismissError };
}
