// Compiles contracts/*.sol with solc-js (pure JS, bundled: nothing is downloaded) and
// prints {"ContractName": {"abi": [...], "bytecode": "0x..."}} as JSON on stdout.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const folder = path.join(__dirname, "contracts");
const sources = {};
for (const file of fs.readdirSync(folder).filter((name) => name.endsWith(".sol")).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(folder, file), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((error) => error.severity === "error");
if (errors.length > 0) {
  for (const error of errors) console.error(error.formattedMessage);
  process.exit(1);
}
const contracts = {};
for (const file of Object.keys(output.contracts || {})) {
  for (const [name, contract] of Object.entries(output.contracts[file])) {
    contracts[name] = { abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` };
  }
}
process.stdout.write(JSON.stringify(contracts));
