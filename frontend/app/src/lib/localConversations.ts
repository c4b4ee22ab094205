/**
 * The conversations this browser made, for a server without sign-in (AUTH=none), where
 * nobody owns sessions and the server cannot list them: ids and titles in localStorage.
 */

/** One remembered conversation. */
export interface LocalConversation {
  id: string;
  title: string | null;
  /** When it was last seen active here (ms since the epoch); the list is newest first. */
  lastActiveAt: number;
}

const KEY = "chatbot.conversations";
/** Enough for a sidebar; the oldest fall off. */
const LIMIT = 200;

/** The remembered conversations, newest first (empty where storage is missing or forbidden). */
export function loadConversations(): LocalConversation[] {
  try {
    const parsed = JSON.parse(localStorage.getItem(KEY) ?? "[]") as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed
      .filter(
        (c): c is LocalConversation =>
          typeof c === "object" &&
          c !== null &&
          typeof (c as LocalConversation).id === "string" &&
          typeof (c as LocalConversation).lastActiveAt === "number",
      )
      .sort((a, b) => b.lastActiveAt - a.lastActiveAt);
  } catch {
    return [];
  }
}

function save(list: LocalConversation[]): LocalConversation[] {
  const kept = list.sort((a, b) => b.lastActiveAt - a.lastActiveAt).slice(0, LIMIT);
  try {
    localStorage.setItem(KEY, JSON.stringify(kept));
  } catch {
    // storage full or forbidden: the list lasts until the page closes
  }
  return kept;
}

/** Remembers a conversation (or updates its title); `touch` moves it to the top. */
export function rememberConversation(id: string, title: string | null, touch: boolean): LocalConversation[] {
  const list = loadConversations();
  const known = list.find((c) => c.id === id);
  if (known) {
    known.title = title ?? known.title;
    if (touch) known.lastActiveAt = Date.now();
    return save(list);
  }
  return save([...list, { id, title, lastActiveAt: Date.now() }]);
}

/** Forgets a conversation. */
export function forgetConversation(id: string): LocalConversation[] {
  return save(loadConversations().filter((c) => c.id !== id));
}
