import { useEffect, useLayoutEffect, useRef } from "react";
import type { ChatMessage } from "../types";
import { MessageItem } from "./MessageItem";

interface Props {
  messages: ChatMessage[];
  /** A turn runs but no agent text is streaming yet. */
  thinking: boolean;
}

/** The conversation (role `log`); follows new output while the user is at the bottom. */
export function MessageList({ messages, thinking }: Props) {
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const onScroll = () => {
      stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    // The list shrinks when a transaction card or a banner appears: stay at the bottom.
    const resize = new ResizeObserver(() => {
      if (stick.current) el.scrollTop = el.scrollHeight;
    });
    resize.observe(el);
    return () => {
      el.removeEventListener("scroll", onScroll);
      resize.disconnect();
    };
  }, []);

  useLayoutEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages, thinking]);

  return (
    <div className="message-list" ref={ref} role="log" aria-label="Messages">
      {messages.length === 0 && (
        <div className="empty">
          <h2>Ask the Ethereum agent</h2>
          <p>
            It reads chain state with its tools and proposes transactions that you sign in your own
            wallet.
          </p>
          <ul>
            <li>“What is the balance of 0xf39F…2266?”</li>
            <li>“Show me the latest block.”</li>
            <li>“Send 0.01 ETH to 0x7099…79C8.”</li>
          </ul>
        </div>
      )}
      {messages.map((m) => (
        <MessageItem key={m.id} message={m} />
      ))}
      {thinking && (
        <div className="message message--agent message--thinking" aria-hidden="true">
          <div className="message__bubble">
            <span className="dots">
              <span />
              <span />
              <span />
            </span>
          </div>
        </div>
      )}
    </div>
  );
}
