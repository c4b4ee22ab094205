import { useEffect } from "react";
import type { Address } from "viem";
import { BACKEND_URL, MAX_MESSAGE_LENGTH } from "./config";
import { AccountPanel, SignedOut } from "./components/AccountPanel";
import { Composer } from "./components/Composer";
import { MessageList } from "./components/MessageList";
import { NetworkSelect } from "./components/NetworkSelect";
import { Sidebar } from "./components/Sidebar";
import { ConnectionIndicator, StatusBar } from "./components/StatusBar";
import { TransactionCard } from "./components/TransactionCard";
import { WalletPanel } from "./components/WalletPanel";
import { useAuth } from "./hooks/useAuth";
import { useChat } from "./hooks/useChat";
import { useConversations } from "./hooks/useConversations";
import { useNetworks } from "./hooks/useNetworks";
import { useWallet } from "./hooks/useWallet";
import { useWalletReport } from "./hooks/useWalletReport";
import { currencyOf } from "./lib/networks";

export function App() {
  const auth = useAuth();
  const wallet = useWallet();
  // Who the chat talks as: "none" without sign-in, else the principal; null: not settled.
  const identity = auth.status === "none" ? "none" : auth.status === "signed-in" ? auth.principal : null;
  const chat = useChat(identity);
  const conversations = useConversations(
    auth.status === "none" ? "local" : auth.status === "signed-in" ? "server" : null,
    identity,
  );
  const { note, refresh } = conversations;
  const { sessionId } = chat;
  const canChat = identity !== null;
  const networks = useNetworks(BACKEND_URL, canChat ? sessionId : null);
  const walletReport = useWalletReport({
    identity,
    sessionId,
    online: chat.connection === "connected",
    address: wallet.address,
    chainId: wallet.chainId,
  });
  const liveTitle = chat.state?.session_id === sessionId ? (chat.state?.title ?? null) : null;

  // A new title (the first message, or a rename from another tab): list it.
  useEffect(() => {
    if (sessionId === null || liveTitle === null) return;
    note(sessionId, liveTitle, false);
    if (auth.status === "signed-in") refresh();
  }, [sessionId, liveTitle, auth.status, note, refresh]);

  // The sign-in ended elsewhere (signed out in another tab, expired): settle it again.
  const { refresh: refreshAuth } = auth;
  useEffect(() => {
    if (chat.error?.code === "unauthorized") void refreshAuth();
  }, [chat.error, refreshAuth]);

  const send = async (text: string) => {
    const ok = await chat.send(text);
    if (ok && sessionId !== null) {
      // The list is newest first: this one moves to the top.
      note(sessionId, null, true);
      refresh();
    }
    return ok;
  };

  const signInWithEthereum = async () => {
    const address: Address | null = wallet.address ?? (await wallet.connect());
    if (address === null) return;
    await auth.signInWithEthereum({ address, signMessage: (message) => wallet.signMessage(address, message) });
  };

  const deleteConversation = async (id: string) => {
    if (id === sessionId) {
      const next = conversations.items.find((c) => c.id !== id);
      if (next) chat.openSession(next.id);
      else chat.newChat();
    }
    await conversations.remove(id);
  };

  // A turn runs but no reply text streams yet (waiting for the model, or a tool runs).
  const thinking = chat.processing && !chat.typing;
  // One alert for the chat's, the wallet's, the sign-in's and the list's errors.
  const error =
    chat.error ??
    auth.error ??
    conversations.error ??
    walletReport.error ??
    (wallet.error ? { code: "wallet_error", message: wallet.error } : null);
  const dismissError = () => {
    chat.dismissError();
    auth.dismissError();
    conversations.dismissError();
    walletReport.dismissError();
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
            key={identity ?? ""}
            networks={networks}
            network={chat.state?.network || null}
            onSwitch={chat.switchNetwork}
          />
          <WalletPanel wallet={wallet} />
          <AccountPanel
            auth={auth}
            wallet={wallet}
            onSignInWithEthereum={() => void signInWithEthereum()}
            onSignOut={() => void auth.signOut()}
          />
        </div>
      </header>
      <div className="app__body">
        <Sidebar
          items={conversations.items}
          currentId={sessionId}
          currentTitle={liveTitle}
          hasMore={conversations.hasMore}
          onNew={chat.newChat}
          onOpen={chat.openSession}
          onRename={conversations.rename}
          onDelete={(id) => void deleteConversation(id)}
          onLoadMore={() => void conversations.loadMore()}
        />
        <main className="chat">
          <StatusBar state={chat.state} error={error} onDismissError={dismissError} />
          {auth.status === "signed-out" ? (
            <SignedOut auth={auth} />
          ) : (
            <>
              <MessageList messages={chat.messages} thinking={thinking} />
              <div className="chat__bottom">
                {chat.pendingTx && (
                  <TransactionCard
                    key={chat.pendingTx.id}
                    tx={chat.pendingTx}
                    currency={currencyOf(networks, chat.pendingTx.network)}
                    wallet={wallet}
                    onResult={chat.reportTransaction}
                  />
                )}
                <Composer
                  processing={chat.processing}
                  maxLength={MAX_MESSAGE_LENGTH}
                  onSend={send}
                  onStop={chat.interrupt}
                />
              </div>
            </>
          )}
        </main>
      </div>
    </div>
  );
}
