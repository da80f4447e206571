#!/usr/bin/env python3
"""Summarise a Trivy JSON report for the release mail, and gate the release on it.

    python3 scripts/scan_summary.py trivy-results.json --run-url URL [--github-output FILE]

Prints a plain-text summary (findings by severity, how many have a fixed version, the run's
link) and exits 1 when a CRITICAL or HIGH finding has a fix (the release stops before the tags
move and before the mail), else 0. Findings accepted in ``.trivyignore`` are already left out of
the report by Trivy. With ``--github-output`` the summary is also appended to that file as the
step output ``summary`` (multi-line syntax), with one output per severity (``critical``, ...).
Standard library only: it runs on the bare runner (release.yml, job ``scan``).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
BLOCKING = ("CRITICAL", "HIGH")


@dataclass
class Counts:
    """Findings (one per package and vulnerability) by severity, and those with a fix."""

    total: Counter[str] = field(default_factory=Counter)
    fixable: Counter[str] = field(default_factory=Counter)
    blocking: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no CRITICAL or HIGH finding has a fixed version."""
        return not self.blocking


def is_fixable(vulnerability: dict[str, Any]) -> bool:
    """A fixed version exists (Trivy's ``--ignore-unfixed`` keeps exactly these)."""
    status = vulnerability.get("Status")
    if status:
        return bool(status == "fixed")
    return bool(vulnerability.get("FixedVersion"))


def count(report: dict[str, Any]) -> Counts:
    """Count the findings of a Trivy JSON report (schema 2: ``Results[].Vulnerabilities[]``)."""
    counts = Counts()
    for result in report.get("Results") or []:
        for vulnerability in result.get("Vulnerabilities") or []:
            severity = str(vulnerability.get("Severity", "UNKNOWN")).upper()
            if severity not in SEVERITIES:
                severity = "UNKNOWN"
            counts.total[severity] += 1
            if is_fixable(vulnerability):
                counts.fixable[severity] += 1
                if severity in BLOCKING:
                    counts.blocking.append(
                        f"{severity} {vulnerability.get('VulnerabilityID', '?')} in "
                        f"{vulnerability.get('PkgName', '?')} "
                        f"{vulnerability.get('InstalledVersion', '?')} "
                        f"(fixed in {vulnerability.get('FixedVersion', '?')}; "
                        f"{result.get('Target', '?')})"
                    )
    return counts


def render(report: dict[str, Any], counts: Counts, run_url: str) -> str:
    """The plain-text summary that goes into the "new image" mail and the run's summary page."""
    artifact = report.get("ArtifactName", "the image")
    lines = [f"Vulnerability scan (Trivy) of {artifact}:"]
    for severity in SEVERITIES:
        lines.append(
            f"  {severity:<9}{counts.total[severity]:>5}   ({counts.fixable[severity]} with a fix)"
        )
    if counts.passed:
        lines.append("Gate: passed (no CRITICAL or HIGH finding that has a fix).")
    else:
        lines.append(f"Gate: FAILED, {len(counts.blocking)} CRITICAL/HIGH finding(s) with a fix:")
        lines += [f"  - {item}" for item in counts.blocking]
    lines.append("Accepted findings: .trivyignore in the repository (left out of these counts).")
    lines.append(f"Details: {run_url}")
    return "\n".join(lines) + "\n"


def github_output(summary: str, counts: Counts) -> str:
    """Step outputs in the GITHUB_OUTPUT file syntax (a random delimiter for the multi-line one)."""
    delimiter = f"EOF_{secrets.token_hex(8)}"
    lines = [f"summary<<{delimiter}", summary.rstrip("\n"), delimiter]
    lines += [f"{severity.lower()}={counts.total[severity]}" for severity in SEVERITIES]
    lines.append(f"passed={'true' if counts.passed else 'false'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Read the report, print the summary, write the outputs; 1 when the gate fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="Trivy JSON report (--format json)")
    parser.add_argument("--run-url", required=True, help="link to the workflow run")
    parser.add_argument("--github-output", type=Path, help="append step outputs to this file")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text())
    counts = count(report)
    summary = render(report, counts, args.run_url)
    sys.stdout.write(summary)
    if args.github_output is not None:
        with args.github_output.open("a") as out:
            out.write(github_output(summary, counts))
    return 0 if counts.passed else 1


if __name__ == "__main__":
    sys.exit(main())
