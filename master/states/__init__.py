"""The state tree: load, validate, render and order it into per-minion plans (master side)."""
