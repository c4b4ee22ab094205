"""The built-in Ethereum MCP server: read-only chain tools, one `network` argument per call.

Run it with `python -m chatbot.tools.evm [--transport stdio|http]`. It holds no "current
network": every call names the network, so one server process serves every session.
"""
