import { useLayoutEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";

interface Props {
  /** A turn is running: Send waits (the server answers 409 otherwise), Stop shows. */
  processing: boolean;
  maxLength: number;
  onSend: (text: string) => Promise<boolean>;
  onStop: () => Promise<void>;
}

/** The message box: Enter sends, Shift+Enter adds a line; Stop while a turn runs. */
export function Composer({ processing, maxLength, onSend, onStop }: Props) {
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const [stopping, setStopping] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);

  // A new turn (or its end) makes Stop usable again.
  const [lastProcessing, setLastProcessing] = useState(processing);
  if (processing !== lastProcessing) {
    setLastProcessing(processing);
    setStopping(false);
  }

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto"; // one row, as long as the box is empty
    if (text) el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
  }, [text]);

  const tooLong = text.length > maxLength;
  const canSend = text.trim().length > 0 && !tooLong && !processing && !sending;

  const submit = async () => {
    if (!canSend) return;
    setSending(true);
    const ok = await onSend(text);
    setSending(false);
    if (ok) setText("");
    ref.current?.focus();
  };

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    void submit();
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    }
  };

  const stop = async () => {
    setStopping(true);
    await onStop();
    setStopping(false);
  };

  return (
    <form className="composer" onSubmit={onSubmit}>
      <textarea
        ref={ref}
        className="composer__input"
        aria-label="Message"
        placeholder="Ask the agent…"
        title="Ask about balances, blocks, contracts. Enter sends, Shift+Enter adds a new line."
        rows={1}
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        aria-invalid={tooLong || undefined}
        autoFocus
      />
      <div className="composer__actions">
        {text.length > maxLength * 0.8 && (
          <span className={`composer__count${tooLong ? " composer__count--over" : ""}`}>
            {text.length}/{maxLength}
          </span>
        )}
        {processing && (
          <button type="button" className="button button--danger" onClick={() => void stop()} disabled={stopping}>
            Stop
          </button>
        )}
        <button type="submit" className="button button--primary" disabled={!canSend}>
          Send
        </button>
      </div>
    </form>
  );
}
