import type { AuthView } from "../hooks/useAuth";
import type { WalletView } from "../hooks/useWallet";
import { principalLabel } from "../lib/principal";

interface Props {
  auth: AuthView;
  wallet: WalletView;
  onSignInWithEthereum: () => void;
  onSignOut: () => void;
}

/** Who is signed in, Sign in with Ethereum (when the server offers it), Sign out. */
export function AccountPanel({ auth, wallet, onSignInWithEthereum, onSignOut }: Props) {
  if (auth.status === "none" || auth.status === "loading") return null;
  const { principal } = auth;
  const canUpgrade = auth.siwe && !principal?.startsWith("eth:");
  return (
    <div className="account-panel">
      {principal !== null && (
        <span className="account-panel__who" data-testid="signed-in-as" data-principal={principal} title={principal}>
          <span className="visually-hidden">Signed in as </span>
          {principalLabel(principal)}
        </span>
      )}
      {canUpgrade && (
        <button
          type="button"
          className="button"
          data-testid="sign-in-ethereum"
          onClick={onSignInWithEthereum}
          disabled={auth.busy || wallet.connecting || !wallet.provider}
          title={
            wallet.provider
              ? "Sign a message with your wallet; your conversations go with your address."
              : "Install an Ethereum wallet such as MetaMask to sign in with it."
          }
        >
          Sign in with Ethereum
        </button>
      )}
      {principal !== null && !auth.guest && (
        <button type="button" className="button" data-testid="sign-out" onClick={onSignOut} disabled={auth.busy}>
          Sign out
        </button>
      )}
    </div>
  );
}

/** In place of the chat while signed out (a server without guests): how to get in. */
export function SignedOut({ auth }: { auth: AuthView }) {
  return (
    <div className="signed-out" role="status">
      <h2>Sign in to chat</h2>
      <p>
        {auth.siwe
          ? "Sign in with Ethereum (top right): your conversations go with your address."
          : "This server needs a sign-in this app does not offer (an API key or your own login)."}
      </p>
      {auth.anonymous && (
        <p>
          <button type="button" className="button" onClick={() => void auth.refresh()} disabled={auth.busy}>
            Continue as guest
          </button>
        </p>
      )}
    </div>
  );
}
