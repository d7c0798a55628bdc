"""Example third-party plugins for audio-mia-harness (see README.md)."""

__version__ = "0.1.0"
