"""The package version, in its own module so that nothing imports upward from ``__init__``."""

__all__ = ["__version__"]

__version__ = "0.1.0"
