import { useState } from "react";
import { formatEther } from "viem";
import type { WalletView } from "../hooks/useWallet";
import { walletErrorMessage } from "../lib/walletUtils";
import type { TokenCall, WalletTx } from "../types";
import { EstimatedFee, SimulationNote } from "./TxSimulation";

interface Props {
  tx: WalletTx;
  /** The symbol of the native currency on the transaction's network, for the fee. */
  currency: string;
  wallet: WalletView;
  onResult: (success: boolean, hash?: string, error?: string) => Promise<void>;
}

function native(value: string, currency: string): string {
  try {
    return `${formatEther(BigInt(value || 0))} ${currency}`;
  } catch {
    return `${value} wei`;
  }
}

/** The token call in words, e.g. "Sends 6 TST to 0x…", in the token's own units. */
function tokenCallText(call: TokenCall): string {
  const amount = `${call.amount_formatted} ${call.symbol ?? "tokens"}`;
  if (call.function === "approve") return `Allows ${call.counterparty} to spend ${amount}`;
  return `Sends ${amount} to ${call.counterparty}`;
}

/**
 * The session's pending transaction: Approve sends it through the wallet, Reject declines.
 * The server's trial run shows as the estimated fee, or as a warning when it would fail.
 */
export function TransactionCard({ tx, currency, wallet, onResult }: Props) {
  const [busy, setBusy] = useState<null | "approve" | "reject">(null);
  const [note, setNote] = useState<string | null>(null);

  const approve = async () => {
    const provider = wallet.provider;
    if (!provider || busy) return;
    setBusy("approve");
    setNote("Confirm the transaction in your wallet…");
    try {
      const { sendWalletTransaction } = await import("../lib/wallet");
      const { hash, account } = await sendWalletTransaction(provider, tx);
      wallet.setAddress(account);
      setNote(`Sent: ${hash}`);
      await onResult(true, hash);
    } catch (err) {
      const message = walletErrorMessage(err);
      setNote(message);
      await onResult(false, undefined, message);
    } finally {
      setBusy(null);
    }
  };

  const reject = async () => {
    if (busy) return;
    setBusy("reject");
    try {
      await onResult(false, undefined, "User rejected the request.");
    } finally {
      setBusy(null);
    }
  };

  const hasData = Boolean(tx.data && tx.data !== "0x");
  // Approving stays possible (the simulation can be wrong), but never by habit.
  const failing = tx.simulation?.ok === false;
  return (
    <section
      className={failing ? "tx-card tx-card--failing" : "tx-card"}
      aria-label="Pending transaction"
      data-tx-id={tx.id}
    >
      <header className="tx-card__header">
        <h3>Transaction to approve</h3>
        <span className="badge">
          {tx.network} · chain {tx.chain_id}
        </span>
      </header>
      {tx.description && <p className="tx-card__description">{tx.description}</p>}
      <dl className="tx-card__fields">
        <dt>To</dt>
        <dd className="mono">{tx.to}</dd>
        <dt>Value</dt>
        <dd>{native(String(tx.value), currency)}</dd>
        {tx.token_call && (
          <>
            <dt>Token</dt>
            <dd className="tx-card__token">{tokenCallText(tx.token_call)}</dd>
          </>
        )}
        {hasData && (
          <>
            <dt>Data</dt>
            <dd className="mono tx-card__data">{tx.data}</dd>
          </>
        )}
        {tx.simulation?.ok && <EstimatedFee simulation={tx.simulation} currency={currency} />}
      </dl>
      <SimulationNote tx={tx} />
      {!wallet.provider && (
        <p className="tx-card__hint">No wallet found: install an Ethereum wallet to approve, or reject.</p>
      )}
      {note && (
        <p className="tx-card__note" role="status">
          {note}
        </p>
      )}
      <div className="tx-card__actions">
        <button
          type="button"
          className={failing ? "button button--danger" : "button button--primary"}
          onClick={() => void approve()}
          disabled={!wallet.provider || busy !== null}
          aria-busy={busy === "approve"}
        >
          {failing ? "Approve anyway" : "Approve"}
        </button>
        <button
          type="button"
          className="button"
          onClick={() => void reject()}
          disabled={busy !== null}
          aria-busy={busy === "reject"}
        >
          Reject
        </button>
      </div>
    </section>
  );
}
