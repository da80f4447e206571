"""Render the example summary e-mail in docs/ from a realistic report, with the real templates.

    .venv/bin/python scripts/render_example_email.py          # writes docs/example-email.{html,txt}
    .venv/bin/python scripts/render_example_email.py --check  # exit 1 when the files are stale

The report is fixed (host, times, digests), so the output only changes when the templates or the
rendering change; a unit test runs ``--check`` so that the example cannot drift from the code.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchkeeper.notify.render import render_report
from watchkeeper.report import ContainerOutcome, Report, State

DOCS = Path(__file__).resolve().parent.parent / "docs"
STARTED = datetime(2025, 3, 14, 9, 30, 0, tzinfo=UTC)


def digest(seed: str) -> str:
    """A realistic, fixed sha256 digest made from ``seed``."""
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def example_report() -> Report:
    """One run on ``web-1``: two updates, a rollback with its logs, a failure, and the rest."""
    report = Report(host="web-1", started_at=STARTED)
    updated = {
        "state": State.UPDATED,
        "old_digest": digest("3f9a1c"),
        "new_digest": digest("b7e2d4"),
    }
    outcomes = [
        ContainerOutcome("api", "ghcr.io/acme/api:1.4", duration_s=3.2, **updated),  # type: ignore[arg-type]
        ContainerOutcome("worker", "ghcr.io/acme/api:1.4", duration_s=2.7, **updated),  # type: ignore[arg-type]
        ContainerOutcome(
            "web",
            "nginx:1.27",
            State.ROLLED_BACK,
            old_digest=digest("5c0e8f"),
            new_digest=digest("e41a07"),
            duration_s=61.4,
            error="not healthy within 60 s",
            reason="health check failed 3 times: curl: (7) Failed to connect to localhost port 80",
            log_tail=[
                '2025/03/14 09:30:41 [emerg] 1#1: unknown directive "gzip_brotli" in '
                "/etc/nginx/conf.d/default.conf:12",
                'nginx: [emerg] unknown directive "gzip_brotli" in '
                "/etc/nginx/conf.d/default.conf:12",
            ],
        ),
        ContainerOutcome(
            "reports",
            "registry.acme.internal/reports:2",
            State.FAILED,
            old_digest=digest("91d3aa"),
            new_digest=digest("0c7b52"),
            duration_s=4.0,
            error="pull failed: unauthorized: authentication required",
        ),
        ContainerOutcome(
            "grafana",
            "grafana/grafana:11.5",
            State.AVAILABLE,
            old_digest=digest("7d2e61"),
            new_digest=digest("a90f3b"),
        ),
        ContainerOutcome("postgres", "postgres:16", State.FRESH, old_digest=digest("c4b8e0")),
        ContainerOutcome("redis", "redis:7", State.FRESH, old_digest=digest("2a6f9d")),
        ContainerOutcome(
            "backup", "acme/backup:latest", State.SKIPPED, reason="watchkeeper.enable=false"
        ),
    ]
    for outcome in outcomes:
        report.add(outcome)
    report.finished_at = STARTED + timedelta(seconds=74.6)
    return report


def render_files() -> dict[Path, str]:
    """The example files and their content."""
    message = render_report(example_report(), title_tag="prod")
    assert message.html is not None
    return {
        DOCS / "example-email.html": message.html,
        DOCS / "example-email.txt": f"Subject: {message.subject}\n\n{message.text}",
    }


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with ``--check`` report whether they are up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the files are stale")
    args = parser.parse_args(argv)
    stale = [path for path, text in render_files().items() if _read(path) != text]
    if args.check:
        for path in stale:
            print(f"{path} is stale: run scripts/render_example_email.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in render_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
