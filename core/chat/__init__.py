"""Chat: the engine (one base copy, adapters per side), tuned-weight discovery."""
