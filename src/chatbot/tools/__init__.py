"""Tools the agent can call on a session's behalf."""
