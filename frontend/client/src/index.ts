/** @chatbot/client: the framework-agnostic client of the chatbot server. */
export { ChatManager } from "./ChatManager.js";
export { createSessionId, isValidSessionId, type RandomSource } from "./ids.js";
export { applyEvent, emptyState, fromServerState, isTyping } from "./state.js";
export {
  ConnectionStatus,
  type ChatError,
  type ChatManagerConfig,
  type ChatManagerEventHandlers,
  type Message,
  type MessageStatus,
  type NetworkSwitchResult,
  type Sender,
  type SessionState,
  type ToolCall,
  type ToolStatus,
  type WalletResultStatus,
  type WalletTransaction,
} from "./types.js";
