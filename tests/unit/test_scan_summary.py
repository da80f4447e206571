"""scripts/scan_summary.py: the scan's counts for the release mail, and the release gate."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_URL = "https://github.com/acme/watchkeeper/actions/runs/42"


def load_script() -> ModuleType:
    """Import ``scripts/scan_summary.py`` (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "scan_summary", ROOT / "scripts" / "scan_summary.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def vuln(severity: str, fixed: str = "", status: str | None = None) -> dict[str, Any]:
    """One Trivy finding as in ``--format json`` (schema 2)."""
    finding: dict[str, Any] = {
        "VulnerabilityID": f"CVE-2026-{abs(hash((severity, fixed, status))) % 10000}",
        "PkgName": "libexample",
        "InstalledVersion": "1.0",
        "Severity": severity,
    }
    if fixed:
        finding["FixedVersion"] = fixed
    if status:
        finding["Status"] = status
    return finding


def report(*vulnerabilities: dict[str, Any]) -> dict[str, Any]:
    """A Trivy report: an OS target with these findings and a Python target with none."""
    return {
        "SchemaVersion": 2,
        "ArtifactName": "ghcr.io/acme/watchkeeper@sha256:abc",
        "Results": [
            {"Target": "debian 12", "Class": "os-pkgs", "Vulnerabilities": list(vulnerabilities)},
            {"Target": "Python", "Class": "lang-pkgs"},
        ],
    }


def run(tmp_path: Path, data: dict[str, Any]) -> tuple[int, str, str]:
    """Run the script's main on ``data``; (exit code, GITHUB_OUTPUT text, printed summary)."""
    script = load_script()
    path = tmp_path / "trivy.json"
    path.write_text(json.dumps(data))
    output = tmp_path / "github_output"
    code = script.main([str(path), "--run-url", RUN_URL, "--github-output", str(output)])
    return code, output.read_text(), script.render(data, script.count(data), RUN_URL)


def test_counts_by_severity_and_fix_and_the_gate_passes_without_fixable_high(
    tmp_path: Path,
) -> None:
    """Unfixed CRITICAL/HIGH and fixed MEDIUM/LOW are counted, and do not fail the release."""
    data = report(
        vuln("CRITICAL", status="affected"),
        vuln("HIGH"),
        vuln("MEDIUM", fixed="1.1"),
        vuln("LOW", fixed="1.2", status="fixed"),
        vuln("LOW", status="will_not_fix"),
        vuln("NEGLIGIBLE"),
    )
    code, outputs, summary = run(tmp_path, data)
    assert code == 0
    assert "critical=1\nhigh=1\nmedium=1\nlow=2\nunknown=1\npassed=true" in outputs
    assert "MEDIUM       1   (1 with a fix)" in summary
    assert "LOW          2   (1 with a fix)" in summary
    assert "Gate: passed" in summary
    assert RUN_URL in summary
    assert "ghcr.io/acme/watchkeeper@sha256:abc" in summary


@pytest.mark.parametrize("severity", ["CRITICAL", "HIGH"])
def test_a_fixable_critical_or_high_fails_the_gate_and_is_named(
    tmp_path: Path, severity: str
) -> None:
    """Exit 1, ``passed=false``, and the finding with its fixed version in the summary."""
    code, outputs, summary = run(tmp_path, report(vuln(severity, fixed="2.0"), vuln("LOW")))
    assert code == 1
    assert "passed=false" in outputs
    assert "Gate: FAILED, 1 CRITICAL/HIGH finding(s) with a fix:" in summary
    assert "in libexample 1.0 (fixed in 2.0; debian 12)" in summary


def test_summary_output_uses_the_multiline_syntax(tmp_path: Path) -> None:
    """``summary<<DELIM`` … ``DELIM`` with a delimiter that is not in the text."""
    _, outputs, summary = run(tmp_path, report())
    first, *rest = outputs.splitlines()
    delimiter = first.removeprefix("summary<<")
    assert first.startswith("summary<<EOF_")
    assert delimiter not in summary
    body = "\n".join(rest[: rest.index(delimiter)])
    assert body == summary.rstrip("\n")
    assert "CRITICAL     0   (0 with a fix)" in body


def test_an_image_without_findings_has_no_results_key(tmp_path: Path) -> None:
    """Trivy omits ``Results``/``Vulnerabilities`` when there is nothing: all zero, passed."""
    code, outputs, _ = run(tmp_path, {"SchemaVersion": 2, "ArtifactName": "x"})
    assert code == 0
    assert "critical=0" in outputs
