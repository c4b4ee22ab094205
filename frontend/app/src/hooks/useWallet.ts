import { useCallback, useEffect, useState } from "react";
import type { Address, EIP1193Provider, Hex } from "viem";
import { getProvider, parseChainId, walletErrorMessage } from "../lib/walletUtils";

/** viem is loaded on demand, the first time a wallet is used. */
const loadWallet = () => import("../lib/wallet");

export interface WalletView {
  provider: EIP1193Provider | undefined;
  address: Address | null;
  /** The chain the wallet is on (known without an account), or null. */
  chainId: number | null;
  connecting: boolean;
  error: string | null;
  /** Asks the wallet for an account; resolves to it, or null (the reason is in `error`). */
  connect: () => Promise<Address | null>;
  /** Has the wallet sign a text with `account` (rejects when the user refuses). */
  signMessage: (account: Address, message: string) => Promise<Hex>;
  dismissError: () => void;
  setAddress: (address: Address | null) => void;
}

/** The injected EIP-1193 wallet (`window.ethereum`), its current account and chain. */
export function useWallet(): WalletView {
  const [provider, setProvider] = useState<EIP1193Provider | undefined>(() => getProvider());
  const [address, setAddress] = useState<Address | null>(null);
  const [chainId, setChainId] = useState<number | null>(null);
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
    // Both at once, so they land in one render (and one report to the server).
    loadWallet()
      .then((w) => Promise.allSettled([w.getConnectedAddress(provider), w.getChainId(provider)]))
      .then(([account, chain]) => {
        if (!live) return;
        if (account.status === "fulfilled") setAddress(account.value);
        // A `chainChanged` that came first is newer.
        if (chain.status === "fulfilled") setChainId((current) => current ?? chain.value);
      })
      .catch(() => undefined);
    const onAccounts = (accounts: unknown) => {
      const list = Array.isArray(accounts) ? (accounts as Address[]) : [];
      setAddress(list[0] ?? null);
    };
    const onChain = (id: unknown) => setChainId(parseChainId(id));
    provider.on?.("accountsChanged", onAccounts);
    provider.on?.("chainChanged", onChain);
    return () => {
      live = false;
      provider.removeListener?.("accountsChanged", onAccounts);
      provider.removeListener?.("chainChanged", onChain);
    };
  }, [provider]);

  const connect = useCallback(async () => {
    if (!provider) return null;
    setConnecting(true);
    setError(null);
    try {
      const { connectWallet } = await loadWallet();
      const account = await connectWallet(provider);
      setAddress(account);
      return account;
    } catch (err) {
      setError(walletErrorMessage(err));
      return null;
    } finally {
      setConnecting(false);
    }
  }, [provider]);

  const signMessage = useCallback(
    async (account: Address, message: string) => {
      if (!provider) throw new Error("No Ethereum wallet in this browser.");
      return (await loadWallet()).signMessage(provider, account, message);
    },
    [provider],
  );

  const dismissError = useCallback(() => setError(null), []);

  return { provider, address, chainId, connecting, error, connect, signMessage, dismissError, setAddress };
}
