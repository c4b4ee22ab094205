import { CREDENTIALS } from "../config";
import type { NetworkInfo } from "../types";

/** Lists the server's networks (`POST /api/mcp-command list_networks`). */
export async function fetchNetworks(
  backendUrl: string,
  sessionId: string,
  signal?: AbortSignal,
): Promise<NetworkInfo[]> {
  const res = await fetch(`${backendUrl}/api/mcp-command`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ command: "list_networks", args: {}, session_id: sessionId }),
    credentials: CREDENTIALS,
    signal,
  });
  if (!res.ok) throw new Error(`Could not list networks (HTTP ${res.status}).`);
  const body = (await res.json()) as { success?: boolean; data?: unknown };
  if (!body.success || !Array.isArray(body.data)) return [];
  return body.data.filter(
    (n): n is NetworkInfo =>
      typeof n === "object" && n !== null && typeof (n as NetworkInfo).network === "string",
  );
}

/** The symbol of a network's native currency; "ETH" when the server names none (older servers). */
export function currencyOf(networks: NetworkInfo[], network: string): string {
  return networks.find((n) => n.network === network)?.currency || "ETH";
}
