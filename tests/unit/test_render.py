"""Rendering a run's report into the notification subject, HTML and plain text.

README, "Notifications: SendGrid, SMTP and every other channel".
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
import structlog

from tests.sinks import structlog_defaults as structlog_defaults
from watchkeeper.errors import ConfigError
from watchkeeper.notify.base import Message
from watchkeeper.notify.render import (
    check_templates,
    render_plain,
    render_report,
    render_startup,
    render_with_fallback,
)
from watchkeeper.report import ContainerOutcome, Report, State

OLD = "sha256:" + "0123456789ab" + "c" * 52
NEW = "sha256:" + "fedcba987654" + "d" * 52
XSS = "health check failed: <script>alert(1)</script>"


class TableParser(HTMLParser):
    """Collects the text of every ``<td>`` row of the document, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    @property
    def data_rows(self) -> list[list[str]]:
        """Rows with data cells (the heading row has only ``<th>``)."""
        return [row for row in self.rows if row]


def parse_html(html: str | None) -> TableParser:
    assert html is not None
    parser = TableParser()
    parser.feed(html)
    parser.close()
    return parser


def make_report(*outcomes: ContainerOutcome) -> Report:
    report = Report(host="web-1")
    for outcome in outcomes:
        report.add(outcome)
    return report.finish()


def mixed_report() -> Report:
    return make_report(
        ContainerOutcome(
            "api",
            "ghcr.io/acme/api:1.4",
            State.UPDATED,
            old_digest=OLD,
            new_digest=NEW,
            duration_s=3.21,
        ),
        ContainerOutcome(
            "worker",
            "ghcr.io/acme/api:1.4",
            State.UPDATED,
            old_digest=OLD,
            new_digest=NEW,
            duration_s=2.5,
        ),
        ContainerOutcome("db", "postgres:16", State.FRESH, old_digest=OLD),
        ContainerOutcome(
            "web",
            "nginx:1",
            State.ROLLED_BACK,
            old_digest=OLD,
            new_digest=NEW,
            duration_s=61.0,
            error=XSS,
        ),
    )


def test_render_subject_with_tag_lists_nonzero_counts() -> None:
    """The subject names the host and only the non-zero counts, prefixed by the tag."""
    message = render_report(mixed_report(), title_tag="prod")
    assert message.subject == "[prod] watchkeeper on web-1: 2 updated, 1 rolled back"


def test_render_subject_orders_counts_updated_failed_rolled_back_available() -> None:
    """Counts appear in the contract's order whatever the order of the containers."""
    report = make_report(
        ContainerOutcome("a", "a:1", State.AVAILABLE),
        ContainerOutcome("b", "b:1", State.ROLLED_BACK),
        ContainerOutcome("c", "c:1", State.FAILED),
        ContainerOutcome("d", "d:1", State.UPDATED),
    )
    assert render_report(report).subject == (
        "watchkeeper on web-1: 1 updated, 1 failed, 1 rolled back, 1 available"
    )


def test_render_subject_without_changes_says_no_changes() -> None:
    """Fresh and skipped containers only: ``no changes`` and no tag brackets without a tag."""
    report = make_report(
        ContainerOutcome("db", "postgres:16", State.FRESH),
        ContainerOutcome("x", "x:1", State.SKIPPED),
    )
    assert render_report(report).subject == "watchkeeper on web-1: no changes"


def test_render_subject_names_rows_skipped_for_an_invalid_label() -> None:
    """A run whose only finding is an invalid rule label is not "no changes": it failed."""
    report = make_report(
        ContainerOutcome("db", "postgres:16", State.FRESH),
        ContainerOutcome("x", "x:1", State.SKIPPED, label_error=True),
        ContainerOutcome("y", "y:1", State.SKIPPED, label_error=True),
    )
    assert render_report(report).subject == "watchkeeper on web-1: 2 label errors"
    one = make_report(
        ContainerOutcome("a", "a:1", State.UPDATED),
        ContainerOutcome("x", "x:1", State.SKIPPED, label_error=True),
    )
    assert render_report(one).subject == "watchkeeper on web-1: 1 updated, 1 label error"


def test_render_html_has_one_row_per_container() -> None:
    """The HTML table has exactly one data row per container, in report order."""
    rows = parse_html(render_report(mixed_report()).html).data_rows
    assert [row[0] for row in rows] == ["api", "worker", "db", "web"]
    assert all(len(row) == 6 for row in rows)
    assert rows[0][1:5] == [
        "ghcr.io/acme/api:1.4",
        "0123456789ab → fedcba987654",
        "updated",
        "3.2 s",
    ]
    assert rows[3][3] == "rolled back"


def test_render_digests_are_shortened_to_12_hex_digits() -> None:
    """Both bodies show 12 hex digits of each digest and never the full digest."""
    message = render_report(mixed_report())
    assert message.html is not None
    for body in (message.text, message.html):
        assert "0123456789ab → fedcba987654" in body
        assert OLD not in body
        assert NEW not in body
        assert "0123456789abc" not in body


def test_render_html_escapes_container_error() -> None:
    """A ``<script>`` in an error is shown as text, never as markup."""
    message = render_report(mixed_report())
    assert message.html is not None
    parser = parse_html(message.html)
    assert "script" not in parser.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert parser.data_rows[3][5] == XSS


def test_render_text_has_one_aligned_line_per_container() -> None:
    """The plain text has a heading and one line per container, with columns aligned."""
    lines = render_report(mixed_report()).text.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("CONTAINER"))
    table = lines[heading : heading + 5]
    assert [line.split()[0] for line in table] == ["CONTAINER", "api", "worker", "db", "web"]
    image_column = table[0].index("IMAGE")
    state_column = table[0].index("STATE")
    for line in table[1:]:
        assert line[image_column - 2 : image_column] == "  "
        assert line[image_column] != " "
        assert line[state_column - 2 : state_column] == "  "
    assert table[4].endswith(XSS)
    assert lines[0] == "watchkeeper on web-1: 2 updated, 1 rolled back"


def test_render_empty_report_says_nothing_is_watched() -> None:
    """A run with no containers renders both bodies without a table."""
    message = render_report(make_report())
    assert message.subject == "watchkeeper on web-1: no changes"
    assert "No containers are watched." in message.text
    assert parse_html(message.html).data_rows == []


def test_render_with_template_dir_prefers_user_templates(tmp_path: Path) -> None:
    """A user's text template replaces the built-in one; the missing HTML one falls back."""
    (tmp_path / "report.txt.j2").write_text(
        "{{ host }}{% for row in rows %}|{{ row.name }}={{ row.new_digest }}{% endfor %}"
    )
    message = render_report(mixed_report(), template_dir=str(tmp_path))
    assert message.text == "web-1|api=fedcba987654|worker=fedcba987654|db=|web=fedcba987654"
    assert len(parse_html(message.html).data_rows) == 4


def test_check_templates_with_undefined_name_raises_config_error(tmp_path: Path) -> None:
    """A user template using an unknown variable is a configuration error, found at start."""
    (tmp_path / "report.html.j2").write_text("<p>{{ hots }}</p>")
    with pytest.raises(ConfigError, match="NOTIFICATION_TEMPLATE_DIR") as info:
        check_templates(str(tmp_path))
    assert "hots" in str(info.value)


def test_check_templates_with_missing_folder_raises_config_error(tmp_path: Path) -> None:
    """A template folder that does not exist is a configuration error."""
    with pytest.raises(ConfigError, match="not a folder"):
        check_templates(str(tmp_path / "nope"))


def test_render_plain_prefixes_tag_and_has_no_html() -> None:
    """An ad-hoc message keeps its body as plain text and gets the title tag."""
    message = render_plain("new image pushed", "api:1.5 <b>is out</b>", title_tag="ci")
    assert message.subject == "[ci] new image pushed"
    assert message.text == "api:1.5 <b>is out</b>"
    assert message.html is None


def rolled_back_with_logs() -> Report:
    return make_report(
        ContainerOutcome("api", "acme/api:2", State.UPDATED, old_digest=OLD, new_digest=NEW),
        ContainerOutcome(
            "web",
            "nginx:1",
            State.ROLLED_BACK,
            old_digest=OLD,
            new_digest=NEW,
            duration_s=12.0,
            error="not healthy within 10 s",
            reason="health check failed 3 times",
            log_tail=["booting", "<b>fatal</b>: no config"],
        ),
    )


def test_render_rolled_back_row_carries_reason_and_log_tail_in_both_bodies() -> None:
    """A rolled-back row shows why and the failed container's last log lines, escaped in HTML."""
    message = render_report(rolled_back_with_logs())
    parser = parse_html(message.html)
    assert len(parser.data_rows) == 2
    error_cell = parser.data_rows[1][5]
    assert "health check failed 3 times" in error_cell
    assert "<b>fatal</b>: no config" in error_cell
    assert "b" not in parser.tags
    text_lines = message.text.splitlines()
    web = next(i for i, line in enumerate(text_lines) if line.startswith("web "))
    assert text_lines[web + 1].strip() == "reason: health check failed 3 times"
    assert "    | <b>fatal</b>: no config" in text_lines[web + 2 : web + 5]


def test_render_reason_equal_to_error_is_not_repeated() -> None:
    """A reason that only repeats the error is left out."""
    report = make_report(
        ContainerOutcome("x", "x:1", State.FAILED, error="pull failed", reason="pull failed")
    )
    assert render_report(report).text.count("pull failed") == 1


@pytest.mark.parametrize(
    ("state", "severity"),
    [
        (State.ROLLED_BACK, "failure"),
        (State.FAILED, "failure"),
        (State.UPDATED, "success"),
        (State.AVAILABLE, "info"),
    ],
)
def test_render_report_severity_follows_worst_state(state: State, severity: str) -> None:
    """Chat channels get failure, success or info from the run's outcome."""
    message = render_report(make_report(ContainerOutcome("x", "x:1", state)))
    assert message.severity == severity
    assert message.kind == "run-summary"


def test_render_startup_lists_details_under_tagged_subject() -> None:
    """The startup message names version and host, then one aligned line per detail."""
    message = render_startup(
        "web-1",
        "1.2.3",
        {"engines": "unix:///var/run/docker.sock", "notify on": "changes"},
        title_tag="prod",
    )
    assert message.subject == "[prod] watchkeeper 1.2.3 started on web-1"
    assert "engines    unix:///var/run/docker.sock" in message.text
    assert "notify on  changes" in message.text
    assert message.kind == "startup"
    assert message.html is None


def test_render_with_fallback_when_user_template_fails_uses_builtin(tmp_path: Path) -> None:
    """A user template that breaks on a real report falls back to the built-in one, logged."""
    (tmp_path / "report.txt.j2").write_text("{{ rows[5].name }}")
    with structlog.testing.capture_logs() as logs:
        message = render_with_fallback(mixed_report(), template_dir=tmp_path)
    assert message.text.startswith("watchkeeper on web-1")
    assert [e["event"] for e in logs] == ["notification.template_failed"]


def test_message_redacted_masks_secrets_in_every_part() -> None:
    """Secrets are masked in subject, text and HTML; very short values are left alone."""
    message = Message("key SG.abcdef in subject", "text SG.abcdef", "<p>SG.abcdef a</p>")
    clean = message.redacted(["SG.abcdef", "a"])
    assert clean == Message("key *** in subject", "text ***", "<p>*** a</p>")


def test_render_tag_move_shows_the_new_tag_beside_the_image() -> None:
    """A container a tag policy moved reads ``image → new tag`` in both bodies."""
    report = make_report(
        ContainerOutcome(
            "api", "ghcr.io/acme/api:1.2.3", State.UPDATED, old_digest=OLD, new_digest=NEW,
            old_tag="1.2.3", new_tag="1.2.4",
        )
    )  # fmt: skip
    message = render_report(report)
    assert "ghcr.io/acme/api:1.2.3 → 1.2.4" in message.text
    assert "ghcr.io/acme/api:1.2.3 → 1.2.4" in (message.html or "")
