// The test suite's local chain: `npx hardhat node --hostname 127.0.0.1 --port <free port>`.
// CHAIN_ID picks the chain id, so a test can run two chains that differ.
// Hardhat compiles nothing here (its sources folder is empty on purpose, so it never
// downloads a compiler); the test contracts in contracts/ are compiled by solc-js
// through compile.js.
const os = require("os");
const path = require("path");

const chainId = Number.parseInt(process.env.CHAIN_ID || "31337", 10);
if (!Number.isInteger(chainId) || chainId <= 0) {
  throw new Error(`CHAIN_ID must be a positive integer, got ${process.env.CHAIN_ID}`);
}
const scratch = path.join(os.tmpdir(), "chatbot-hardhat");

module.exports = {
  networks: {
    hardhat: { chainId },
  },
  paths: {
    sources: "./no-hardhat-sources",
    cache: path.join(scratch, "cache"),
    artifacts: path.join(scratch, "artifacts"),
  },
};
