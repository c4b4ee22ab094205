import { formatUnits } from "viem";

/** Digits kept after the first significant one, e.g. 0.0000213456 -> 0.0000213456, 1.23456789 -> 1.234568. */
const SIGNIFICANT_DECIMALS = 6;
const GAS = new Intl.NumberFormat("en-US");

/**
 * An amount in wei as the native currency (18 decimals), rounded to six decimals past
 * its leading zeros: a fee of a few gwei stays readable without a wall of digits.
 */
export function formatNative(wei: bigint): string {
  // Zeros between the point and the first significant digit (none from 1 ETH up).
  const leadingZeros = Math.max(0, 18 - wei.toString().length);
  const decimals = Math.min(18, leadingZeros + SIGNIFICANT_DECIMALS);
  const unit = 10n ** BigInt(18 - decimals);
  return formatUnits((wei + unit / 2n) / unit, decimals);
}

/** Gas with thousands separators, the same in every locale: "21,000". */
export function formatGas(gas: number): string {
  return GAS.format(gas);
}
