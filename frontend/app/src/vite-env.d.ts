/// <reference types="vite/client" />
import type { EIP1193Provider } from "viem";

interface ImportMetaEnv {
  /** Backend origin; empty: the page's own origin. */
  readonly VITE_BACKEND_URL?: string;
  readonly VITE_MAX_MESSAGE_LENGTH?: string;
}

declare global {
  interface Window {
    /** An injected EIP-1193 wallet (MetaMask and friends, or a test provider). */
    ethereum?: EIP1193Provider;
  }
}
