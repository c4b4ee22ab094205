"""Sessions: per-user state, turns, the event log and the registry that holds them."""
