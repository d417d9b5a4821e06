"""Doorways Discord bot: app commands over a durable job queue, feeding the engine's worker."""
