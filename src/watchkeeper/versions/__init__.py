"""Update policies, as pure functions: no I/O, fed by the caller's tag lists and config reads.

- :mod:`.tags`: what a tag such as ``v1.2.3-alpine`` is made of (prefix, numbers, pre-release,
  suffix shape, scheme), which tags are no version, and how versions of a family compare;
- :mod:`.candidates`: the tag policies (``digest``, ``none``, ``patch``, ``minor``, ``major``),
  the include/exclude regexes, and the highest allowed candidate among a registry's tags;
- :mod:`.maturity`: the minimum image age, failing closed, and the highest candidate old enough;
- :mod:`.windows`: ``CRON;DURATION`` maintenance windows in a timezone.

Each module's docstring states its rules as the README quotes them.
"""

from watchkeeper.versions.candidates import (
    Choice,
    TagFilters,
    TagPolicy,
    TagRegexError,
    choose_tag,
    compile_tag_regex,
    parse_policy,
)
from watchkeeper.versions.maturity import (
    MaturePick,
    Maturity,
    check_age,
    format_duration,
    parse_created,
    pick_mature,
)
from watchkeeper.versions.tags import Version, parse_version
from watchkeeper.versions.windows import UpdateWindow, parse_window

__all__ = [
    "Choice",
    "MaturePick",
    "Maturity",
    "TagFilters",
    "TagPolicy",
    "TagRegexError",
    "UpdateWindow",
    "Version",
    "check_age",
    "choose_tag",
    "compile_tag_regex",
    "format_duration",
    "parse_created",
    "parse_policy",
    "parse_version",
    "parse_window",
    "pick_mature",
]
