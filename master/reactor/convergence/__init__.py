"""Convergence: the desired state of every managed server, the reconciler that corrects
the difference, and split brain (which VIP holder yields)."""
