"""The reactor: rules that answer events with safe actions (see docs/reactor.md)."""
