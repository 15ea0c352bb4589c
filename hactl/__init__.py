"""hactl: event-driven high availability for OpenStack control planes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hactl")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
