/** @chatbot/client: the framework-agnostic client of the chatbot server. */
export { ChatClient } from "./ChatClient.js";
export { ChatManager } from "./ChatManager.js";
export { ChatRequestError } from "./errors.js";
export { createSessionId, isValidSessionId, type RandomSource } from "./ids.js";
export { buildSiweMessage, type SiweMessageFields } from "./siwe.js";
export { applyEvent, emptyState, fromServerState, isTyping } from "./state.js";
export {
  ConnectionStatus,
  type AuthMethod,
  type ChatClientConfig,
  type ChatError,
  type ChatManagerConfig,
  type ChatManagerEventHandlers,
  type ListSessionsOptions,
  type Me,
  type Message,
  type MessageStatus,
  type NetworkSwitchResult,
  type Sender,
  type SessionPage,
  type SessionState,
  type SessionSummary,
  type SignInResult,
  type Simulation,
  type SiweSignInOptions,
  type TokenCall,
  type TokenSource,
  type ToolCall,
  type ToolStatus,
  type WalletAccount,
  type WalletResultStatus,
  type WalletTransaction,
} from "./types.js";
