import { useCallback, useEffect, useState } from "react";
import type { Address, EIP1193Provider } from "viem";
import { getProvider, walletErrorMessage } from "../lib/walletUtils";

/** viem is loaded on demand, the first time a wallet is used. */
const loadWallet = () => import("../lib/wallet");

export interface WalletView {
  provider: EIP1193Provider | undefined;
  address: Address | null;
  connecting: boolean;
  error: string | null;
  connect: () => Promise<void>;
  dismissError: () => void;
  setAddress: (address: Address | null) => void;
}

/** The injected EIP-1193 wallet (`window.ethereum`) and its current account. */
export function useWallet(): WalletView {
  const [provider, setProvider] = useState<EIP1193Provider | undefined>(() => getProvider());
  const [address, setAddress] = useState<Address | null>(null);
  const [connecting, setConnecting] = useState(false);
  const [error, setError] = useState<string | null>(null);

  // Some wallets inject themselves after the page has loaded.
  useEffect(() => {
    if (provider) return;
    const found = () => setProvider(getProvider());
    window.addEventListener("ethereum#initialized", found, { once: true });
    const timer = window.setTimeout(found, 1000);
    return () => {
      window.removeEventListener("ethereum#initialized", found);
      window.clearTimeout(timer);
    };
  }, [provider]);

  useEffect(() => {
    if (!provider) return;
    let live = true;
    loadWallet()
      .then((w) => w.getConnectedAddress(provider))
      .then((a) => live && setAddress(a))
      .catch(() => undefined);
    const onAccounts = (accounts: unknown) => {
      const list = Array.isArray(accounts) ? (accounts as Address[]) : [];
      setAddress(list[0] ?? null);
    };
    provider.on?.("accountsChanged", onAccounts);
    return () => {
      live = false;
      provider.removeListener?.("accountsChanged", onAccounts);
    };
  }, [provider]);

  const connect = useCallback(async () => {
    if (!provider) return;
    setConnecting(true);
    setError(null);
    try {
      const { connectWallet } = await loadWallet();
      setAddress(await connectWallet(provider));
    } catch (err) {
      setError(walletErrorMessage(err));
    } finally {
      setConnecting(false);
    }
  }, [provider]);

  const dismissError = useCallback(() => setError(null), []);

  return { provider, address, connecting, error, connect, dismissError, setAddress };
}
