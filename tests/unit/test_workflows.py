"""The release pipeline's guarantees that actionlint cannot see.

Every third-party action is pinned by a full commit SHA with its release in a comment; the
release scans and signs the pushed digest before its tags move and before the mail, and mails
before it asks a deployment to update; Dependabot keeps pins and Python dependencies current.
These workflows only run on GitHub: here they are linted (scripts/lint-delivery) and read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+){0,2}\s*$")


def load(name: str) -> dict[str, Any]:
    """A workflow as data (PyYAML reads the ``on:`` key as True; not needed here)."""
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def uses_lines() -> list[tuple[str, int, str]]:
    """Every ``uses:`` line of every workflow: (file, line number, the line)."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.match(r"^\s*(-\s+)?uses:", line):
                found.append((path.name, number, line))
    return found


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The steps of ``job`` whose ``uses`` is ``action`` (owner/repo[/path]) at any ref."""
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def needs_of(jobs: dict[str, Any], name: str) -> set[str]:
    """Every job that ``name`` waits for, directly or through other jobs."""
    direct = jobs[name].get("needs", [])
    direct = [direct] if isinstance(direct, str) else list(direct)
    result = set(direct)
    for other in direct:
        result |= needs_of(jobs, other)
    return result


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    """``owner/repo@<40 hex>  # vX.Y.Z``; local reusable workflows (``./``) are ours."""
    lines = uses_lines()
    assert len(lines) > 10
    for file, number, line in lines:
        ref = line.split("uses:", 1)[1].split("#", 1)[0].strip()
        if ref.startswith("./"):
            continue
        assert PINNED.match(ref), f"{file}:{number}: not pinned by commit SHA: {ref}"
        assert VERSION_COMMENT.search(line), f"{file}:{number}: no '# vX.Y.Z' comment"


def test_one_action_one_pin() -> None:
    """The same action is pinned to the same commit and version everywhere."""
    pins: dict[str, set[str]] = {}
    for _, _, line in uses_lines():
        ref = line.split("uses:", 1)[1].strip()
        if ref.startswith("./"):
            continue
        action = ref.split("@")[0].split("/")[0] + "/" + ref.split("@")[0].split("/")[1]
        pins.setdefault(action, set()).add(ref.split("@", 1)[1])
    assert {a: p for a, p in pins.items() if len(p) > 1} == {}


def test_release_scans_signs_and_attests_before_tags_mail_and_deploy() -> None:
    """Jobs: image → (scan, sign) → publish → notify → deploy; the steps that do each."""
    jobs = load("release.yml")["jobs"]
    assert needs_of(jobs, "image") == {"ci"}
    assert {"image"} <= needs_of(jobs, "scan")
    assert {"image"} <= needs_of(jobs, "sign")
    assert {"scan", "sign"} <= needs_of(jobs, "publish")
    assert {"scan", "sign", "publish"} <= needs_of(jobs, "notify")
    assert "notify" in needs_of(jobs, "deploy")
    assert not {"publish", "notify", "deploy"} & (needs_of(jobs, "scan") | needs_of(jobs, "sign"))

    build = steps_using(jobs["image"], "docker/build-push-action")[0]["with"]
    assert "push-by-digest=true" in build["outputs"], "no tag moves before scan and signature"
    assert "tags" not in build
    assert build["sbom"] is True
    assert str(build["provenance"]).startswith("mode=")

    scan = jobs["scan"]
    trivy = steps_using(scan, "aquasecurity/trivy-action")
    assert trivy, "the scan job runs Trivy"
    assert all("@${{ needs.image.outputs.digest }}" in scan["env"]["IMAGE_REF"] for _ in trivy)
    assert all(step["with"]["image-ref"] == "${{ env.IMAGE_REF }}" for step in trivy)
    assert all(step["with"]["trivyignores"] == ".trivyignore" for step in trivy)
    assert steps_using(scan, "github/codeql-action/upload-sarif")
    assert scan["permissions"]["security-events"] == "write"
    gate = [s for s in scan["steps"] if "scripts/scan_summary.py" in str(s.get("run", ""))]
    assert gate, "the summary and gate step"
    names = [s.get("name", s.get("uses")) for s in scan["steps"]]
    assert names.index(gate[0]["name"]) == len(names) - 1, "SARIF uploaded before the gate"
    assert scan["outputs"]["summary"] == "${{ steps.gate.outputs.summary }}"

    sign = jobs["sign"]
    assert steps_using(sign, "sigstore/cosign-installer")
    assert any("cosign sign --yes" in str(s.get("run", "")) for s in sign["steps"])
    attest = steps_using(sign, "actions/attest-build-provenance")[0]["with"]
    assert attest["subject-digest"] == "${{ needs.image.outputs.digest }}"
    assert attest["push-to-registry"] is True
    assert sign["permissions"]["id-token"] == "write"
    assert sign["permissions"]["attestations"] == "write"

    publish = "\n".join(str(s.get("run", "")) for s in jobs["publish"]["steps"])
    assert "imagetools create" in publish
    assert '"$DIGEST"' in publish, "every tag is checked to name the scanned digest"


def test_release_mail_carries_the_scan_summary_through_body_file() -> None:
    """The "new image" mail is ``watchkeeper notify --body-file`` with the scan's summary."""
    jobs = load("release.yml")["jobs"]
    steps = jobs["notify"]["steps"]
    body = next(
        s
        for s in steps
        if "mail.txt" in str(s.get("run", "")) and "SCAN_SUMMARY" in s.get("env", {})
    )
    assert body["env"]["SCAN_SUMMARY"] == "${{ needs.scan.outputs.summary }}"
    assert '"$SCAN_SUMMARY"' in body["run"]
    send = next(s for s in steps if " notify " in str(s.get("run", "")))
    assert "--body-file /tmp/mail.txt" in send["run"]
    assert "mail.txt:/tmp/mail.txt:ro" in send["run"]
    assert steps.index(body) < steps.index(send)


def test_ci_scans_the_end_to_end_image_without_failing_on_unfixable() -> None:
    """ci.yml scans watchkeeper-e2e:latest after the suite: fixable CRITICAL/HIGH only."""
    test_job = load("ci.yml")["jobs"]["test"]
    trivy = steps_using(test_job, "aquasecurity/trivy-action")
    assert len(trivy) == 1
    options = trivy[0]["with"]
    assert options["image-ref"] == "watchkeeper-e2e:latest"
    assert options["ignore-unfixed"] is True
    assert options["severity"] == "CRITICAL,HIGH"
    assert options["trivyignores"] == ".trivyignore"
    runs = [str(s.get("run", "")) for s in test_job["steps"]]
    suite = next(i for i, run in enumerate(runs) if "scripts/test" in run)
    assert test_job["steps"].index(trivy[0]) > suite
    assert (ROOT / ".trivyignore").exists()


@pytest.mark.parametrize("ecosystem", ["github-actions", "pip"])
def test_dependabot_keeps_pins_and_python_dependencies_current(ecosystem: str) -> None:
    """.github/dependabot.yml updates the action pins and the pip (pip-compile) lock."""
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    entries = [u for u in config["updates"] if u["package-ecosystem"] == ecosystem]
    assert len(entries) == 1
    assert entries[0]["directory"] == "/"
    assert entries[0]["schedule"]["interval"] in {"daily", "weekly", "monthly"}


def test_readme_shows_the_pipeline_and_the_verify_commands() -> None:
    """The CI/CD table names the new jobs; the verify commands name this workflow and issuer."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## CI/CD pipeline") : text.index("## Security")]
    jobs = load("release.yml")["jobs"]
    for job in ("image", "scan", "sign", "publish", "notify", "deploy"):
        assert job in jobs
        assert f"job `{job}`" in section, job
    assert "gh attestation verify oci://ghcr.io/<owner>/watchkeeper:<tag>" in section
    assert "cosign verify ghcr.io/<owner>/watchkeeper:<tag>" in section
    assert "https://token.actions.githubusercontent.com" in section
    assert r"\.github/workflows/release\.yml@refs/" in section
    for path in ("requirements.txt", "scripts/lock", ".trivyignore", ".github/dependabot.yml"):
        assert path in section, path
        assert (ROOT / path).exists(), path
