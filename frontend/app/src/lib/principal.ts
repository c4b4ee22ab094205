import { shortAddress } from "./walletUtils";

/** How a principal reads: "Guest", a short address, or the name of a key or login. */
export function principalLabel(principal: string): string {
  if (principal.startsWith("anon:")) return "Guest";
  if (principal.startsWith("eth:")) return shortAddress(principal.slice(4));
  return principal.slice(principal.indexOf(":") + 1);
}
