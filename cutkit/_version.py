"""cutkit's version (one place: the package, the run files and the wheel metadata read it)."""

__version__ = "0.1.0"
