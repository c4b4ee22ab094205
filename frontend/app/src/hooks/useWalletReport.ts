import { useCallback, useEffect, useRef, useState } from "react";
import { ChatRequestError, type ChatError } from "@chatbot/client";
import { api } from "../lib/api";

/** What the server was told: this wallet, in this conversation, for this principal. */
interface Report {
  identity: string;
  sessionId: string;
  /** Lowercase, so the same account from different wallet calls compares equal. */
  address: string | null;
  chainId: number | null;
}

export interface WalletReportInput {
  /** Who the chat talks as (see useChat); null while sign-in is not settled. */
  identity: string | null;
  sessionId: string | null;
  /** The chat's stream is open: the server is there and knows who we are. */
  online: boolean;
  address: string | null;
  chainId: number | null;
}

export interface WalletReportView {
  /** The last report's failure, unless it was a passing one. */
  error: ChatError | null;
  dismissError: () => void;
}

function same(a: Report | null, b: Report): boolean {
  return (
    a !== null &&
    a.identity === b.identity &&
    a.sessionId === b.sessionId &&
    a.address === b.address &&
    a.chainId === b.chainId
  );
}

/**
 * Whether a failure is passing and not worth an alert: the server unreachable, busy or
 * rate limiting (the next change reports again), or the sign-in gone (the chat's own
 * requests show that and sign in again).
 */
function passing(err: unknown): boolean {
  if (!(err instanceof ChatRequestError)) return false;
  const { status } = err;
  return status === undefined || status === 401 || status === 408 || status === 429 || status >= 500;
}

function toError(err: unknown): ChatError {
  return err instanceof ChatRequestError
    ? { code: err.code, message: err.message }
    : { code: "client_error", message: err instanceof Error ? err.message : String(err) };
}

/**
 * Keeps the server told which wallet account and chain the user is on in the conversation
 * in view (`POST /api/wallet/account`): it simulates the transactions it proposes from that
 * account. Reports go out only when the conversation, the principal, the account or the
 * chain changed, one at a time and in order, so the last one is what the server keeps. A
 * disconnect is reported only if an account was; a wallet that never connected has
 * nothing to take back. Reporting never holds up the chat.
 */
export function useWalletReport({ identity, sessionId, online, address, chainId }: WalletReportInput): WalletReportView {
  const [error, setError] = useState<ChatError | null>(null);
  /** What the server holds as far as we know. */
  const told = useRef<Report | null>(null);
  const queue = useRef<Promise<void>>(Promise.resolve());
  const account = address?.toLowerCase() ?? null;

  useEffect(() => {
    if (!online || identity === null || sessionId === null) return;
    const report: Report = { identity, sessionId, address: account, chainId: account === null ? null : chainId };
    const previous = told.current;
    if (same(previous, report)) return;
    if (report.address === null && (previous?.address ?? null) === null) return;
    told.current = report;
    queue.current = queue.current.then(() =>
      api.reportWallet(sessionId, { address: report.address, chainId: report.chainId }).then(
        () => undefined,
        (err: unknown) => {
          if (!passing(err)) {
            setError(toError(err));
            return;
          }
          // Not told: the next change (or the stream reopening) tries again.
          if (told.current === report) told.current = previous;
        },
      ),
    );
  }, [online, identity, sessionId, account, chainId]);

  const dismissError = useCallback(() => setError(null), []);

  return { error, dismissError };
}
