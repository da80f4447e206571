"""Turns a run's ``Report`` into a ``Message``: the subject line and the HTML and text bodies.

The bodies come from Jinja2 templates, ``report.html.j2`` and ``report.txt.j2``: the built-in ones
in ``notify/templates``, or the user's own (``NOTIFICATION_TEMPLATE_DIR``), which are looked up
first. Both get the same context, which is therefore part of the user-facing contract:

``subject``, ``host``, ``title_tag`` (or None), ``counts`` (README, "The report"), ``duration``
("1.9 s"), ``report`` (the whole report dict), ``rows`` (one ``Row`` per container, display-ready:
``name``, ``image`` (with the move, ``app:1.2.3 → 1.2.4``, when a tag policy moves it to another
tag), ``old_tag``/``new_tag`` (that move's tags, or ""), ``old_digest``/``new_digest`` (12 hex
digits, or ""), ``digests``
("abc → def"), ``state``, ``state_label`` ("rolled back"), ``duration``, ``error``, ``reason``
(why it was skipped, failed or rolled back, "" when it says nothing the error does not) and
``log_tail`` (the failed new container's last log lines, a list), ``host`` (its engine's name)),
grouped by engine in the order of ``report.engines``, ``many_engines`` (True with more than one
engine: the built-in templates then head each engine's rows with its name; README, "Many
hosts") and ``widths`` (the longest cell per column, headings included, to align plain text).

HTML is autoescaped (a container error may contain anything); undefined names raise instead of
rendering empty, so that a typo in a user's template is found when it is checked at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from watchkeeper.errors import ConfigError
from watchkeeper.notify.base import Message
from watchkeeper.report import ContainerOutcome, Report, State

if TYPE_CHECKING:
    import jinja2

TEMPLATE_SETTING = "NOTIFICATION_TEMPLATE_DIR"
HTML_TEMPLATE = "report.html.j2"
TEXT_TEMPLATE = "report.txt.j2"
SUBJECT_COUNTS = (
    (State.UPDATED, "updated"),
    (State.FAILED, "failed"),
    (State.ROLLED_BACK, "rolled back"),
    (State.AVAILABLE, "available"),
)
HEADINGS = {
    "name": "CONTAINER",
    "image": "IMAGE",
    "digests": "DIGEST",
    "state_label": "STATE",
    "duration": "DURATION",
    "error": "ERROR",
}


@dataclass(frozen=True)
class Row:
    """One container as the templates show it: every cell already a string."""

    name: str
    image: str
    old_digest: str
    new_digest: str
    digests: str
    state: str
    state_label: str
    duration: str
    error: str
    reason: str = ""
    host: str = ""
    log_tail: tuple[str, ...] = ()
    old_tag: str = ""
    new_tag: str = ""


def short_digest(digest: str | None) -> str:
    """``sha256:0123456789abcdef…`` -> ``0123456789ab``; None -> ``""``."""
    if not digest:
        return ""
    _, _, hex_part = digest.partition(":")
    return (hex_part or digest)[:12]


def describe_digests(old: str | None, new: str | None) -> str:
    """``old → new`` when the digest moved, else the one digest known, else ``""``."""
    old_short, new_short = short_digest(old), short_digest(new)
    if old_short and new_short and old_short != new_short:
        return f"{old_short} → {new_short}"
    return old_short or new_short


def format_duration(seconds: float) -> str:
    """``3.2 s``; an empty string for containers nothing was done to."""
    return f"{seconds:.1f} s" if seconds > 0 else ""


def build_row(outcome: ContainerOutcome) -> Row:
    """The display-ready cells of one container's outcome."""
    return Row(
        name=describe_name(outcome),
        image=describe_image(outcome),
        old_digest=short_digest(outcome.old_digest),
        new_digest=short_digest(outcome.new_digest),
        digests=describe_digests(outcome.old_digest, outcome.new_digest),
        state=str(outcome.state),
        state_label=str(outcome.state).replace("_", " "),
        duration=format_duration(outcome.duration_s),
        error=outcome.error or "",
        reason=_distinct_reason(outcome),
        host=outcome.host or "",
        log_tail=tuple(line.rstrip() for line in outcome.log_tail),
        old_tag=outcome.old_tag or "",
        new_tag=outcome.new_tag or "",
    )


def describe_name(outcome: ContainerOutcome) -> str:
    """The container's name; a Swarm service's says so: ``web (service, 2 replicas)``."""
    if outcome.kind != "service":
        return outcome.name
    if outcome.replicas == "global":
        return f"{outcome.name} (service, global)"
    count = outcome.replicas
    return f"{outcome.name} (service, {count} replica{'' if count == 1 else 's'})"


def describe_image(outcome: ContainerOutcome) -> str:
    """The image, and the tag it moves to when a tag policy moves it: ``app:1.2.3 → 1.2.4``."""
    if outcome.new_tag and outcome.new_tag != outcome.old_tag:
        return f"{outcome.image} → {outcome.new_tag}"
    return outcome.image


def _distinct_reason(outcome: ContainerOutcome) -> str:
    """The outcome's reason, unless the error already says it (no line said twice)."""
    reason = (outcome.reason or "").strip()
    if not reason or reason == (outcome.error or "").strip():
        return ""
    return reason


def column_widths(rows: list[Row]) -> dict[str, int]:
    """The width of each text column: its longest cell or its heading."""
    return {
        column: max([len(heading)] + [len(getattr(row, column)) for row in rows])
        for column, heading in HEADINGS.items()
    }


def render_subject(report: Report, title_tag: str | None = None) -> str:
    """``[TAG] watchkeeper on HOST: 2 updated, 1 rolled back`` (README, "Notifications").

    After the state counts: rows skipped for an invalid label, then unreachable engines.
    """
    counts = report.counts()
    parts = [
        f"{counts[str(state)]} {label}" for state, label in SUBJECT_COUNTS if counts[str(state)]
    ]
    label_errors = sum(1 for outcome in report.containers if outcome.label_error)
    if label_errors:
        # Skipped rows count as "no changes", but one skipped for an invalid label is a
        # failure that a person must fix: a subject saying "no changes" would hide it.
        parts.append(f"{label_errors} label error{'' if label_errors == 1 else 's'}")
    if counts["engine_errors"]:
        parts.append(f"{counts['engine_errors']} engine unreachable")
    prefix = f"[{title_tag}] " if title_tag else ""
    return f"{prefix}watchkeeper on {report.host}: {', '.join(parts) or 'no changes'}"


def build_environment(template_dir: str | None = None) -> jinja2.Environment:
    """A Jinja2 environment: the user's ``template_dir`` first, then the built-in templates."""
    # Imported here, at the first message rendered: a run with no channel never loads Jinja2.
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if template_dir:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.PackageLoader("watchkeeper.notify", "templates"))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def build_context(report: Report, title_tag: str | None) -> dict[str, Any]:
    """The variables both templates see (listed in the module docstring)."""
    rows = _by_engine(report, [build_row(outcome) for outcome in report.containers])
    return {
        "subject": render_subject(report, title_tag),
        "host": report.host,
        "title_tag": title_tag,
        "counts": report.counts(),
        "duration": f"{report.duration_s:.1f} s",
        "report": report.to_dict(),
        "rows": rows,
        "widths": column_widths(rows),
        # Several engines: the templates head each engine's rows with its name.
        "many_engines": len(report.engines) > 1,
    }


def _by_engine(report: Report, rows: list[Row]) -> list[Row]:
    """The rows grouped by engine, in the order of the report's ``engines`` (stable within)."""
    order = {engine.name: index for index, engine in enumerate(report.engines)}
    return sorted(rows, key=lambda row: order.get(row.host, len(order)))


def render_report(
    report: Report, *, title_tag: str | None = None, template_dir: str | Path | None = None
) -> Message:
    """Render ``report`` as a message with subject, plain text and HTML.

    Raises:
        ConfigError: a user's template (``NOTIFICATION_TEMPLATE_DIR``) is malformed or uses an
            undefined name; callers in a run must catch it like any notification failure.
    """
    import jinja2  # loaded by build_environment; here for its error class

    env = build_environment(str(template_dir) if template_dir else None)
    context = build_context(report, title_tag)
    try:
        text = env.get_template(TEXT_TEMPLATE).render(context)
        html = env.get_template(HTML_TEMPLATE).render(context)
    except jinja2.TemplateError as exc:
        raise ConfigError(TEMPLATE_SETTING, f"{template_dir}: {_describe(exc)}") from exc
    return Message(
        subject=context["subject"],
        text=text,
        html=html,
        kind="run-summary",
        severity=report_severity(report),
    )


def report_severity(report: Report) -> str:
    """``failure`` when an update failed or was rolled back, ``success`` when one went through."""
    counts = report.counts()
    if report.has_failures:
        return "failure"
    if counts[str(State.UPDATED)]:
        return "success"
    return "info"


def render_with_fallback(
    report: Report, *, title_tag: str | None = None, template_dir: str | Path | None = None
) -> Message:
    """``render_report``, falling back to the built-in templates if the user's fail on this report.

    The user's templates were checked at start with a sample report; a real report can still
    reach a branch the sample did not (a missing attribute in an ``if``). Losing the summary for
    that would be worse than sending it in the built-in layout, so the error is logged as
    ``notification.template_failed`` and the built-in templates are used.
    """
    try:
        return render_report(report, title_tag=title_tag, template_dir=template_dir)
    except ConfigError as exc:
        if not template_dir:
            raise
        structlog.get_logger().error("notification.template_failed", error=str(exc))
        return render_report(report, title_tag=title_tag)


def check_templates(template_dir: str | Path) -> None:
    """Render a sample report with the user's templates, so a broken one is reported at start.

    Raises:
        ConfigError: the folder is missing, or a template in it does not render.
    """
    if not Path(template_dir).is_dir():
        raise ConfigError(TEMPLATE_SETTING, f"{template_dir} is not a folder")
    sample = Report(host="example-host")
    sample.add(
        ContainerOutcome(
            name="example",
            image="example/app:1",
            state=State.FAILED,
            old_digest="sha256:" + "0" * 64,
            new_digest="sha256:" + "f" * 64,
            duration_s=1.0,
            error="example error",
            reason="example reason",
            log_tail=["example log line"],
        )
    )
    render_report(sample.finish(), title_tag="example", template_dir=template_dir)


def _describe(exc: jinja2.TemplateError) -> str:
    """``name:line: message`` for syntax errors, the message for the rest."""
    import jinja2  # loaded already: only a render error gets here

    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.name or exc.filename}:{exc.lineno}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def render_plain(subject: str, body: str, *, title_tag: str | None = None) -> Message:
    """An ad-hoc text message (``watchkeeper notify``), with the title tag like every subject."""
    prefix = f"[{title_tag}] " if title_tag else ""
    return Message(subject=f"{prefix}{subject}", text=body, html=None, kind="notify")


def render_startup(
    host: str, version: str, details: dict[str, str], *, title_tag: str | None = None
) -> Message:
    """The ``NOTIFY_STARTUP`` message: which version started where, and how it is set up.

    ``details`` (schedule, engines, channels...) must hold no secret; it is shown as is.
    """
    prefix = f"[{title_tag}] " if title_tag else ""
    subject = f"{prefix}watchkeeper {version} started on {host}"
    width = max((len(key) for key in details), default=0)
    lines = [f"{key.ljust(width)}  {value}" for key, value in details.items()]
    text = "\n".join([subject, "", *lines]) + "\n"
    return Message(subject=subject, text=text, html=None, kind="startup")
