"""The master: bus hub, state compiler and apply, reactor engine, cluster view."""
