import { useState } from "react";
import { formatEther } from "viem";
import type { WalletView } from "../hooks/useWallet";
import { walletErrorMessage } from "../lib/walletUtils";
import type { WalletTx } from "../types";

interface Props {
  tx: WalletTx;
  wallet: WalletView;
  onResult: (success: boolean, hash?: string, error?: string) => Promise<void>;
}

function ether(value: string): string {
  try {
    return `${formatEther(BigInt(value || 0))} ETH`;
  } catch {
    return `${value} wei`;
  }
}

/** The session's pending transaction: Approve sends it through the wallet, Reject declines. */
export function TransactionCard({ tx, wallet, onResult }: Props) {
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
  return (
    <section className="tx-card" aria-label="Pending transaction" data-tx-id={tx.id}>
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
        <dd>{ether(String(tx.value))}</dd>
        {hasData && (
          <>
            <dt>Data</dt>
            <dd className="mono tx-card__data">{tx.data}</dd>
          </>
        )}
      </dl>
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
          className="button button--primary"
          onClick={() => void approve()}
          disabled={!wallet.provider || busy !== null}
          aria-busy={busy === "approve"}
        >
          Approve
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
