"""Rules: loaded from reactors/*.yaml, matched by the engine, acted on by the actions."""
