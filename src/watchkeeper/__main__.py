"""Entry point for ``python -m watchkeeper``."""

from watchkeeper.cli import entry

entry()
