// A client written against the original app, from its description (not from our
// client library): the legacy full-state stream through EventSource, the wallet
// request as a JSON string it parses itself, and wallet outcomes and the wallet's
// network reported as system messages in the original's exact wording.
"use strict";

class OriginalChatManager {
  constructor(backendUrl) {
    this.backendUrl = backendUrl;
    this.sessionId = crypto.randomUUID();
    this.lastPendingWalletTx = null; // the string last seen, compared as a string
    this.state = { messages: [], isProcessing: false, network: null, pendingWalletTx: undefined };
    this.states = 0;
    this.walletRequests = [];
    this.errors = [];
  }

  connectSSE() {
    const url = `${this.backendUrl}/api/chat/stream?session_id=${this.sessionId}`;
    this.eventSource = new EventSource(url);
    this.eventSource.onmessage = (event) => {
      try {
        this.updateChatState(JSON.parse(event.data));
      } catch (error) {
        this.errors.push(String(error));
      }
    };
  }

  updateChatState(data) {
    this.states += 1;
    this.state.messages = data.messages;
    this.state.isProcessing = data.is_processing;
    this.state.network = data.network;
    if (data.pending_wallet_tx === null || data.pending_wallet_tx === undefined) {
      this.state.pendingWalletTx = undefined;
    } else {
      const tx = JSON.parse(data.pending_wallet_tx);
      if (data.pending_wallet_tx !== this.lastPendingWalletTx) {
        this.state.pendingWalletTx = tx;
        this.onWalletTransactionRequest(tx);
      }
    }
    this.lastPendingWalletTx = data.pending_wallet_tx ?? null;
  }

  onWalletTransactionRequest(tx) {
    this.walletRequests.push(tx);
  }

  async post(path, body) {
    const response = await fetch(`${this.backendUrl}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...body, session_id: this.sessionId }),
    });
    if (!response.ok) this.errors.push(`${path}: ${response.status}`);
    return response.status;
  }

  sendMessage(message) {
    return this.post("/api/chat", { message });
  }

  sendSystemMessage(message) {
    return this.post("/api/system", { message });
  }

  interrupt() {
    return this.post("/api/interrupt", {});
  }

  sendNetworkSwitchRequest(networkName) {
    return this.sendSystemMessage(`Dectected user's wallet connected to ${networkName} network`);
  }

  async sendTransactionResult(success, transactionHash, error) {
    const message = success
      ? `Transaction sent: ${transactionHash}`
      : `Transaction rejected by user: ${error || "User cancelled"}`;
    const status = await this.sendSystemMessage(message);
    this.state.pendingWalletTx = undefined;
    return status;
  }
}

window.OriginalChatManager = OriginalChatManager;
