import { BACKEND_URL, MAX_MESSAGE_LENGTH } from "./config";
import { Composer } from "./components/Composer";
import { MessageList } from "./components/MessageList";
import { NetworkSelect } from "./components/NetworkSelect";
import { ConnectionIndicator, StatusBar } from "./components/StatusBar";
import { TransactionCard } from "./components/TransactionCard";
import { WalletPanel } from "./components/WalletPanel";
import { useChat } from "./hooks/useChat";
import { useWallet } from "./hooks/useWallet";

export function App() {
  const chat = useChat();
  const wallet = useWallet();

  // A turn runs but no reply text streams yet (waiting for the model, or a tool runs).
  const thinking = chat.processing && !chat.typing;
  // One alert for the chat's errors and the wallet's connect errors.
  const error =
    chat.error ?? (wallet.error ? { code: "wallet_error", message: wallet.error } : null);
  const dismissError = () => {
    chat.dismissError();
    wallet.dismissError();
  };

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="brand__logo" aria-hidden="true">
            ◆
          </span>
          <h1>Ethereum Agent</h1>
        </div>
        <ConnectionIndicator status={chat.connection} />
        <div className="topbar__controls">
          <NetworkSelect
            backendUrl={BACKEND_URL}
            sessionId={chat.sessionId}
            network={chat.state?.network || null}
            onSwitch={chat.switchNetwork}
          />
          <WalletPanel wallet={wallet} />
          <button type="button" className="button" onClick={chat.newChat}>
            New chat
          </button>
        </div>
      </header>
      <main className="chat">
        <StatusBar state={chat.state} error={error} onDismissError={dismissError} />
        <MessageList messages={chat.messages} thinking={thinking} />
        <div className="chat__bottom">
          {chat.pendingTx && (
            <TransactionCard
              key={chat.pendingTx.id}
              tx={chat.pendingTx}
              wallet={wallet}
              onResult={chat.reportTransaction}
            />
          )}
          <Composer
            processing={chat.processing}
            maxLength={MAX_MESSAGE_LENGTH}
            onSend={chat.send}
            onStop={chat.interrupt}
          />
        </div>
      </main>
    </div>
  );
}
