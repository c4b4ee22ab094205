"""Tools the agent calls: the MCP client pool, the built-in EVM MCP server, the wallet."""
