"""The ``hactl`` command line (typer + rich)."""
