import type { ToolCall } from "../types";

function pretty(value: unknown): string {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

const STATUS_LABEL: Record<string, string> = {
  pending: "running",
  running: "running",
  calling: "running",
  success: "done",
  complete: "done",
  completed: "done",
  ok: "done",
  error: "error",
  failed: "error",
};

/** A tool call as a collapsible card: name and status; args and result inside. */
export function ToolCard({ tool }: { tool: ToolCall }) {
  const status = String(tool.status ?? "");
  const kind = STATUS_LABEL[status] ?? status;
  const hasResult = tool.result !== null && tool.result !== undefined;
  const hasError = tool.error !== null && tool.error !== undefined && tool.error !== "";
  return (
    <details className={`tool-card tool-card--${kind || "unknown"}`}>
      <summary>
        <span className="tool-card__icon" aria-hidden="true">
          ⚙
        </span>
        <span className="tool-card__name">{tool.name}</span>
        <span className={`badge badge--${kind || "unknown"}`}>{status || "unknown"}</span>
      </summary>
      <div className="tool-card__body">
        <div className="tool-card__section">
          <h4>Arguments</h4>
          <pre>{pretty(tool.args ?? {})}</pre>
        </div>
        {hasResult && (
          <div className="tool-card__section">
            <h4>Result</h4>
            <pre>{pretty(tool.result)}</pre>
          </div>
        )}
        {hasError && (
          <div className="tool-card__section tool-card__section--error">
            <h4>Error</h4>
            <pre>{pretty(tool.error)}</pre>
          </div>
        )}
      </div>
    </details>
  );
}
