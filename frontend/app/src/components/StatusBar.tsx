import type { ChatError, ConnectionStatus, SessionState } from "../types";

const CONNECTION_TEXT: Record<string, string> = {
  connected: "Connected",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected",
};

/** The live stream's state, as a small pill (role `status`, named "Connection"). */
export function ConnectionIndicator({ status }: { status: ConnectionStatus }) {
  return (
    <div className={`connection connection--${status}`} role="status" aria-label="Connection">
      <span className="dot" aria-hidden="true" />
      <span>{CONNECTION_TEXT[status] ?? status}</span>
    </div>
  );
}

interface StatusBarProps {
  state: SessionState | null;
  error: ChatError | null;
  onDismissError: () => void;
}

/** Banners from the session state, and the latest error as a dismissible alert. */
export function StatusBar({ state, error, onDismissError }: StatusBarProps) {
  const banners: { key: string; text: string; tone: "info" | "warn" }[] = [];
  if (state?.missing_api_key) {
    banners.push({
      key: "key",
      tone: "warn",
      text: "The server has no API key for its model provider, so the agent cannot answer. Set one (e.g. ANTHROPIC_API_KEY) and restart the server.",
    });
  }
  if (state?.is_loading) {
    banners.push({ key: "loading", tone: "info", text: "Loading the model… replies start once it is ready." });
  }
  if (state?.is_connecting_mcp) {
    banners.push({ key: "mcp", tone: "info", text: "Connecting to the agent's tools…" });
  }
  if (banners.length === 0 && !error) return null;
  return (
    <div className="status-bar">
      {banners.map((b) => (
        <div key={b.key} className={`banner banner--${b.tone}`} role="status" data-banner={b.key}>
          {b.tone === "info" && <span className="spinner" aria-hidden="true" />}
          {b.text}
        </div>
      ))}
      {error && (
        <div className="banner banner--error" role="alert" data-error-code={error.code}>
          <span className="banner__text">
            {error.message || "Something went wrong."}
            {error.code && <code className="banner__code">{error.code}</code>}
          </span>
          <button type="button" className="icon-button" onClick={onDismissError} aria-label="Dismiss">
            ×
          </button>
        </div>
      )}
    </div>
  );
}
