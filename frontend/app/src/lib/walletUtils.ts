/** Wallet helpers that need no viem code (kept out of the lazily loaded wallet chunk). */
import type { EIP1193Provider } from "viem";

export function getProvider(): EIP1193Provider | undefined {
  return typeof window === "undefined" ? undefined : window.ethereum;
}

export function errorCode(err: unknown): number | undefined {
  let current: unknown = err;
  for (let depth = 0; current && depth < 5; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "number") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A short, human message for a wallet failure (viem errors carry `shortMessage`). */
export function walletErrorMessage(err: unknown): string {
  if (errorCode(err) === 4001) return "User rejected the request.";
  if (err && typeof err === "object") {
    const short = (err as { shortMessage?: unknown }).shortMessage;
    if (typeof short === "string" && short) return short;
    const message = (err as { message?: unknown }).message;
    if (typeof message === "string" && message) return message.split("\n")[0] ?? message;
  }
  return String(err);
}

/**
 * A chain id as a wallet gives it: `chainChanged` carries hex ("0x89"), a few wallets
 * send a number or a decimal string. Null for anything else.
 */
export function parseChainId(value: unknown): number | null {
  const id = typeof value === "string" || typeof value === "number" ? Number(value) : NaN;
  return Number.isSafeInteger(id) && id > 0 ? id : null;
}

export function shortAddress(address: string): string {
  return address.length > 12 ? `${address.slice(0, 6)}…${address.slice(-4)}` : address;
}
