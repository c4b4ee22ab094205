import { useEffect, useState } from "react";
import type { NetworkInfo } from "../types";

interface Props {
  /** The server's networks (empty until listed). */
  networks: NetworkInfo[];
  /** The session's network, from the server's state. */
  network: string | null;
  /** Resolves to true once the server has switched. */
  onSwitch: (network: string) => Promise<boolean>;
}

/** The session's network; switching it affects this session only. */
export function NetworkSelect({ networks, network, onSwitch }: Props) {
  const [pending, setPending] = useState<string | null>(null);

  // Show the requested network until the server's state confirms it.
  if (pending !== null && pending === network) setPending(null);
  useEffect(() => {
    if (pending === null) return;
    const timer = window.setTimeout(() => setPending(null), 5000);
    return () => window.clearTimeout(timer);
  }, [pending]);

  const options = [...networks];
  if (network && !options.some((n) => n.network === network)) {
    options.unshift({ network, chain_id: NaN });
  }
  const value = pending ?? network ?? "";
  const chainId = options.find((n) => n.network === value && !Number.isNaN(n.chain_id))?.chain_id;

  const change = async (next: string) => {
    if (!next || next === network) return;
    setPending(next);
    if (!(await onSwitch(next))) setPending(null);
  };

  return (
    <label className="network-select">
      <span className="network-select__label">Network</span>
      <select
        aria-label="Network"
        value={value}
        title={chainId === undefined ? undefined : `Chain id ${chainId}`}
        disabled={options.length === 0 || pending !== null}
        onChange={(e) => void change(e.target.value)}
      >
        {options.length === 0 && <option value="">…</option>}
        {options.map((n) => (
          <option key={n.network} value={n.network}>
            {n.network}
          </option>
        ))}
      </select>
    </label>
  );
}
