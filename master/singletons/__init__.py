"""Singleton services: where each runs (placement.py, pure) and the leases (manager.py)."""
