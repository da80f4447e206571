"""Entry point for ``python -m watchkeeper``."""

from watchkeeper.cli import main

raise SystemExit(main())
