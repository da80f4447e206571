"""The example e-mail in docs/ is what the templates render today (it cannot drift)."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class CellCounter(HTMLParser):
    """Counts table rows with data cells."""

    def __init__(self) -> None:
        super().__init__()
        self.data_rows = 0
        self._row_has_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row_has_td = False
        elif tag == "td" and not self._row_has_td:
            self._row_has_td = True
            self.data_rows += 1


def test_example_email_in_docs_is_up_to_date() -> None:
    """``scripts/render_example_email.py --check`` finds nothing stale."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_example_email.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_example_email_shows_one_row_per_container() -> None:
    """The example has the eight containers of its report, each in one table row."""
    parser = CellCounter()
    parser.feed((ROOT / "docs" / "example-email.html").read_text())
    assert parser.data_rows == 8
