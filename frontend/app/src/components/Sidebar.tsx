import { useState, type FormEvent, type KeyboardEvent, type MouseEvent } from "react";
import type { Conversation } from "../hooks/useConversations";

interface Props {
  items: Conversation[];
  /** The conversation in view. */
  currentId: string | null;
  /** Its title as the live stream has it (newer than the list's). */
  currentTitle: string | null;
  hasMore: boolean;
  onNew: () => void;
  onOpen: (id: string) => void;
  onRename: (id: string, title: string) => Promise<boolean>;
  onDelete: (id: string) => void;
  onLoadMore: () => void;
}

const UNTITLED = "New conversation";

/**
 * My conversations, newest first: open one, rename it in place, delete it, or start a
 * new one. Each entry is a link (`?session=<id>`), so it also opens in a new tab.
 */
export function Sidebar({ items, currentId, currentTitle, hasMore, onNew, onOpen, onRename, onDelete, onLoadMore }: Props) {
  const [editing, setEditing] = useState<string | null>(null);
  const [draft, setDraft] = useState("");

  const titleOf = (c: Conversation) => (c.id === currentId && currentTitle ? currentTitle : c.title) || UNTITLED;

  const startRename = (c: Conversation) => {
    setEditing(c.id);
    setDraft(c.title ?? "");
  };

  const finishRename = async (id: string) => {
    const title = draft.trim();
    setEditing(null);
    const before = items.find((c) => c.id === id)?.title ?? "";
    if (title && title !== before) await onRename(id, title);
  };

  const open = (e: MouseEvent<HTMLAnchorElement>, id: string) => {
    // A plain click switches in place; ctrl/cmd/middle-click opens the link in a new tab.
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    onOpen(id);
  };

  return (
    <nav className="sidebar" data-testid="sidebar" aria-label="Conversations">
      <button type="button" className="button button--primary sidebar__new" data-testid="new-chat" onClick={onNew}>
        New chat
      </button>
      {items.length === 0 ? (
        <p className="sidebar__empty">Your conversations will show up here.</p>
      ) : (
        <ul className="sidebar__list">
          {items.map((c) => {
            const current = c.id === currentId;
            const title = titleOf(c);
            return (
              <li
                key={c.id}
                className={`session-item${current ? " session-item--current" : ""}`}
                data-testid="session-item"
                data-session-id={c.id}
              >
                {editing === c.id ? (
                  <RenameForm
                    value={draft}
                    onChange={setDraft}
                    onDone={() => void finishRename(c.id)}
                    onCancel={() => setEditing(null)}
                  />
                ) : (
                  <a
                    className="session-item__link"
                    href={`?session=${encodeURIComponent(c.id)}`}
                    aria-current={current ? "page" : undefined}
                    onClick={(e) => open(e, c.id)}
                  >
                    {c.processing && !current && <span className="dot dot--busy" aria-hidden="true" />}
                    <span className="session-item__title" data-testid="session-title">
                      {title}
                    </span>
                  </a>
                )}
                <div className="session-item__actions">
                  <button
                    type="button"
                    className="icon-button"
                    data-testid="rename-session"
                    aria-label="Rename conversation"
                    title={`Rename “${title}”`}
                    onClick={() => startRename(c)}
                  >
                    ✎
                  </button>
                  <button
                    type="button"
                    className="icon-button icon-button--danger"
                    data-testid="delete-session"
                    aria-label="Delete conversation"
                    title={`Delete “${title}”`}
                    onClick={() => onDelete(c.id)}
                  >
                    ×
                  </button>
                </div>
              </li>
            );
          })}
        </ul>
      )}
      {hasMore && (
        <button type="button" className="button sidebar__more" onClick={onLoadMore}>
          Show older
        </button>
      )}
    </nav>
  );
}

interface RenameFormProps {
  value: string;
  onChange: (value: string) => void;
  onDone: () => void;
  onCancel: () => void;
}

/** The title in place: Enter (or leaving the field) saves it, Escape keeps the old one. */
function RenameForm({ value, onChange, onDone, onCancel }: RenameFormProps) {
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onDone();
  };
  const onKeyDown = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Escape") {
      e.preventDefault();
      onCancel();
    }
  };
  return (
    <form className="session-item__rename" onSubmit={submit}>
      <input
        className="session-item__input"
        aria-label="Conversation title"
        data-testid="rename-input"
        value={value}
        maxLength={200}
        onChange={(e) => onChange(e.target.value)}
        onKeyDown={onKeyDown}
        onBlur={onDone}
        autoFocus
      />
    </form>
  );
}
