/** The chat's types, straight from the client package (`frontend/client/src`). */
export type {
  ChatError,
  ChatManagerConfig as ChatConfig,
  ChatManagerEventHandlers as ChatHandlers,
  ConnectionStatus,
  Message as ChatMessage,
  SessionState,
  Simulation,
  TokenCall,
  ToolCall,
  WalletTransaction as WalletTx,
} from "@chatbot/client";

/** One entry of `POST /api/mcp-command {command: "list_networks"}`. */
export interface NetworkInfo {
  network: string;
  chain_id: number;
  /** The native currency's symbol, e.g. "ETH", "POL" (older servers send none). */
  currency?: string;
  /** The block explorer's base URL, when the server knows one. */
  explorer_url?: string | null;
}
