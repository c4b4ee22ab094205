import { memo } from "react";
import type { ChatMessage } from "../types";
import { MarkdownText } from "./Markdown";
import { ToolCard } from "./ToolCard";

const SENDER_LABEL: Record<string, string> = { user: "You", agent: "Agent", system: "System" };

function formatTime(timestamp: string): string {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function MessageItemView({ message }: { message: ChatMessage }) {
  const { sender, content, is_streaming: streaming, status, tool } = message;
  const time = formatTime(message.timestamp);
  return (
    <div
      className={`message message--${sender}${streaming ? " message--streaming" : ""}`}
      data-sender={sender}
      data-status={status}
      data-message-id={message.id}
    >
      {sender !== "system" && (
        <div className="message__meta">
          <span className="message__sender">{SENDER_LABEL[sender] ?? sender}</span>
          {time && (
            <time className="message__time" dateTime={message.timestamp}>
              {time}
            </time>
          )}
        </div>
      )}
      <div className="message__bubble">
        {tool ? (
          <>
            <ToolCard tool={tool} />
            {content && <MarkdownText text={content} />}
          </>
        ) : sender === "agent" ? (
          content ? (
            <MarkdownText text={content} />
          ) : streaming ? (
            <span className="dots" aria-label="Agent is typing">
              <span />
              <span />
              <span />
            </span>
          ) : null
        ) : (
          <p className="message__text">{content}</p>
        )}
        {/* A tool card shows its own status. */}
        {!tool && status === "interrupted" && (
          <span className="marker marker--interrupted">interrupted</span>
        )}
        {!tool && status === "error" && <span className="marker marker--error">error</span>}
      </div>
    </div>
  );
}

function toolKey(message: ChatMessage): string {
  return message.tool ? JSON.stringify(message.tool) : "";
}

/** One message; re-renders only when what it shows changed (long chats stream smoothly). */
export const MessageItem = memo(
  MessageItemView,
  (prev, next) =>
    prev.message.id === next.message.id &&
    prev.message.content === next.message.content &&
    prev.message.is_streaming === next.message.is_streaming &&
    prev.message.status === next.message.status &&
    prev.message.sender === next.message.sender &&
    prev.message.timestamp === next.message.timestamp &&
    toolKey(prev.message) === toolKey(next.message),
);
