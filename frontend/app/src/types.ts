/** The chat's types, straight from the client package (`frontend/client/src`). */
export type {
  ChatError,
  ChatManagerConfig as ChatConfig,
  ChatManagerEventHandlers as ChatHandlers,
  ConnectionStatus,
  Message as ChatMessage,
  SessionState,
  ToolCall,
  WalletTransaction as WalletTx,
} from "@chatbot/client";

/** One entry of `POST /api/mcp-command {command: "list_networks"}`. */
export interface NetworkInfo {
  network: string;
  chain_id: number;
}
