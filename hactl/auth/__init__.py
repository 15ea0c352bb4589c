"""Identities, the permission table, credentials and TLS for the NATS bus."""
