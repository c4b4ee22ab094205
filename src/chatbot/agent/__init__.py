"""The agent: a provider-independent turn loop and the model providers it drives."""
