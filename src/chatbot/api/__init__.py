"""HTTP: thin routes over the session registry; the logic lives in `sessions/` and `agent/`."""
