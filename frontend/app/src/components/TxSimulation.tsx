import { formatGas, formatNative } from "../lib/units";
import type { Simulation, WalletTx } from "../types";

/** "≈ 0.000021 ETH (21,000 gas)", or as much of it as the simulation knows. */
function feeText({ gas, fee_wei }: Simulation, currency: string): string {
  const gasText = gas === null ? null : `${formatGas(gas)} gas`;
  let fee: string | null = null;
  try {
    fee = fee_wei === null ? null : `≈ ${formatNative(BigInt(fee_wei))} ${currency}`;
  } catch {
    // not a decimal string: show the gas alone
  }
  if (fee !== null && gasText !== null) return `${fee} (${gasText})`;
  return fee ?? gasText ?? "Unknown";
}

/** The fee a transaction that would succeed costs: an entry of the card's field list. */
export function EstimatedFee({ simulation, currency }: { simulation: Simulation; currency: string }) {
  return (
    <>
      <dt>Estimated fee</dt>
      <dd className="tx-card__fee">{feeText(simulation, currency)}</dd>
    </>
  );
}

/**
 * What the trial run says beyond the fee: a warning that cannot be missed when the
 * transaction would fail, a muted note when it could not be tried; nothing when it would
 * succeed.
 */
export function SimulationNote({ tx }: { tx: WalletTx }) {
  const { simulation } = tx;
  if (simulation === null) {
    return <p className="tx-card__unsimulated">Not simulated: the fee and outcome are unknown.</p>;
  }
  if (simulation.ok) return null;
  return (
    <p className="tx-card__warning" role="alert">
      {simulation.revert_reason
        ? `This transaction would fail: ${simulation.revert_reason}`
        : `This transaction would fail on ${tx.network}.`}
    </p>
  );
}
