/**
 * Wallet operations through viem (loaded on demand: the page does not need viem until
 * a wallet is used): accounts, signing a sign-in message, sending a transaction.
 */
import {
  createWalletClient,
  custom,
  defineChain,
  type Address,
  type Chain,
  type EIP1193Provider,
  type Hex,
  type WalletClient,
} from "viem";
import type { WalletTx } from "../types";
import { errorCode } from "./walletUtils";

/**
 * Chains the app can add to a wallet that does not know them yet: the local dev chain
 * (Hardhat / Anvil). Public chains are known to every wallet already.
 */
const KNOWN_CHAINS: readonly Chain[] = [
  defineChain({
    id: 31337,
    name: "Localhost 8545",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: ["http://127.0.0.1:8545"] } },
  }),
];

function client(provider: EIP1193Provider): WalletClient {
  return createWalletClient({ transport: custom(provider) });
}

/** Addresses the wallet already shares with this page (no prompt). */
export async function getConnectedAddress(provider: EIP1193Provider): Promise<Address | null> {
  const addresses = await client(provider).getAddresses();
  return addresses[0] ?? null;
}

/** The chain the wallet is on (no prompt). */
export async function getChainId(provider: EIP1193Provider): Promise<number> {
  return client(provider).getChainId();
}

/** Asks the wallet for an account (prompts the user). */
export async function connectWallet(provider: EIP1193Provider): Promise<Address> {
  const addresses = await client(provider).requestAddresses();
  const first = addresses[0];
  if (!first) throw new Error("The wallet shared no account.");
  return first;
}

/** Signs a text with the account (EIP-191 `personal_sign`), e.g. a sign-in message. */
export async function signMessage(provider: EIP1193Provider, account: Address, message: string): Promise<Hex> {
  return client(provider).signMessage({ account, message });
}

function chainFor(tx: WalletTx): Chain {
  const known = KNOWN_CHAINS.find((c) => c.id === tx.chain_id);
  if (known) return known;
  return defineChain({
    id: tx.chain_id,
    name: tx.network,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [] } },
  });
}

/** Makes the wallet use the transaction's chain, adding a known chain if needed. */
async function ensureChain(wallet: WalletClient, chain: Chain): Promise<void> {
  const current = await wallet.getChainId();
  if (current === chain.id) return;
  try {
    await wallet.switchChain({ id: chain.id });
  } catch (err) {
    // 4902: the wallet does not know this chain.
    if (errorCode(err) !== 4902) throw err;
    if (chain.rpcUrls.default.http.length === 0) {
      throw new Error(
        `Add the network ${chain.name} (chain id ${chain.id}) to your wallet, then approve again.`,
        { cause: err },
      );
    }
    await wallet.addChain({ chain });
    await wallet.switchChain({ id: chain.id });
  }
}

/**
 * Sends a pending transaction through the wallet: asks for an account, switches to
 * the transaction's chain, then `eth_sendTransaction`. Resolves to the hash and account.
 */
export async function sendWalletTransaction(
  provider: EIP1193Provider,
  tx: WalletTx,
): Promise<{ hash: Hex; account: Address }> {
  const wallet = client(provider);
  const [account] = await wallet.requestAddresses();
  if (!account) throw new Error("The wallet shared no account.");
  const chain = chainFor(tx);
  await ensureChain(wallet, chain);
  const data = tx.data && tx.data !== "0x" ? (tx.data as Hex) : undefined;
  const hash = await wallet.sendTransaction({
    account,
    chain,
    to: tx.to as Address,
    value: BigInt(tx.value || 0),
    data,
  });
  return { hash, account };
}
