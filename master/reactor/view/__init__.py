"""The cluster view: the facts every master folds in from the events and the KV, and the
liveness of the minions and of this master's own feed."""
