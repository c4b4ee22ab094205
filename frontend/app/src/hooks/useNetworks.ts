import { useEffect, useState } from "react";
import { fetchNetworks } from "../lib/networks";
import type { NetworkInfo } from "../types";

const NONE: NetworkInfo[] = [];

/**
 * The server's networks (`list_networks`), empty until they arrive. The list is the same
 * for every session: it is fetched once, for the first session id (null: none yet, e.g.
 * while sign-in is not settled); a failed fetch is tried again for the next one.
 */
export function useNetworks(backendUrl: string, sessionId: string | null): NetworkInfo[] {
  const [networks, setNetworks] = useState<NetworkInfo[] | null>(null);

  useEffect(() => {
    if (networks !== null || !sessionId) return;
    const abort = new AbortController();
    fetchNetworks(backendUrl, sessionId, abort.signal)
      .then(setNetworks)
      .catch(() => undefined);
    return () => abort.abort();
  }, [backendUrl, sessionId, networks]);

  return networks ?? NONE;
}
