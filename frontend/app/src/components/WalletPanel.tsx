import { shortAddress } from "../lib/walletUtils";
import type { WalletView } from "../hooks/useWallet";

/** Connects the injected wallet and shows its account. */
export function WalletPanel({ wallet }: { wallet: WalletView }) {
  if (!wallet.provider) {
    return (
      <div className="wallet-panel wallet-panel--none" title="Install an Ethereum wallet such as MetaMask to sign transactions.">
        No wallet
      </div>
    );
  }
  return (
    <div className="wallet-panel">
      {wallet.address ? (
        <span className="wallet-panel__address" title={wallet.address} data-address={wallet.address}>
          <span className="dot dot--ok" aria-hidden="true" />
          <span className="visually-hidden">Wallet </span>
          {shortAddress(wallet.address)}
        </span>
      ) : (
        <button
          type="button"
          className="button"
          onClick={() => void wallet.connect()}
          disabled={wallet.connecting}
        >
          Connect wallet
        </button>
      )}
    </div>
  );
}
