"""The README's SOPS + age path, run as written: encrypt .env and the key, decrypt on the host.

The four code blocks of the README's "encrypted at rest" section run in a throw-away deployment
folder with its own HOME (where the host's age key goes): the host's key, ``.sops.yaml`` with
that key's public half in place of ``age1...``, encryption, then decryption after the plain
files are gone (``docker compose up -d`` is left out: compose is tested in tests/e2e). Needs
``age`` (Debian) and ``sops`` (scripts/setup installs both); skipped without them outside CI.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADING = "### `.env` and the key encrypted at rest (SOPS + age)"
KEY = "SG.not-a-real-key-but-secret"
TOOLS_PATH = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"


def section_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the README section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(HEADING) + len(HEADING)
    end = re.compile(r"^#{2,3} ", re.M).search(text, start)
    section = text[start : end.start() if end else len(text)]
    return re.findall(r"^```(\w+)\n(.*?)^```$", section, flags=re.M | re.S)


def tools_or_skip() -> None:
    """Skip when age or sops is missing, except in CI, where scripts/setup installed them."""
    missing = [
        tool for tool in ("age", "age-keygen", "sops") if not shutil.which(tool, path=TOOLS_PATH)
    ]
    if missing and os.environ.get("CI"):
        pytest.fail(f"{', '.join(missing)} missing: scripts/setup installs them")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup)")


def sh(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run README lines with bash -e in ``cwd``; AssertionError with the output if one fails."""
    env = {"PATH": TOOLS_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{script}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_readme_section_has_the_four_blocks() -> None:
    """Host key (sh), .sops.yaml (yaml), encrypt (sh), decrypt and start (sh)."""
    blocks = section_blocks()
    assert [lang for lang, _ in blocks] == ["sh", "yaml", "sh", "sh"]
    assert "age-keygen -o ~/.config/sops/age/keys.txt" in blocks[0][1]
    assert "age: age1..." in blocks[1][1]
    assert "sops encrypt" in blocks[2][1]
    assert blocks[3][1].splitlines()[-1] == "docker compose up -d"


def test_readme_sops_path_round_trips_env_and_key(tmp_path: Path) -> None:
    """Encrypted files hold no plain value; decrypted ones equal the originals, the key 0600."""
    tools_or_skip()
    host_key, sops_yaml, encrypt, decrypt = (code for _, code in section_blocks())
    home = tmp_path / "home"
    home.mkdir()
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    subprocess.run(["git", "init", "-q", str(deploy)], check=True)
    shutil.copy(ROOT / ".gitignore", deploy / ".gitignore")
    env_text = (ROOT / ".env.example").read_text() + "WATCHKEEPER_EMAIL_TO=ops@example.com\n"
    (deploy / ".env").write_text(env_text)
    (deploy / "secrets").mkdir()
    (deploy / "secrets" / "sendgrid_api_key").write_text(KEY)

    sh(host_key, deploy, home)
    keys = home / ".config" / "sops" / "age" / "keys.txt"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    public = sh(f"age-keygen -y {keys}", deploy, home).stdout.strip()
    assert public.startswith("age1")
    (deploy / ".sops.yaml").write_text(sops_yaml.replace("age1...", public))

    sh(encrypt, deploy, home)
    env_enc = (deploy / ".env.enc").read_text()
    key_enc = (deploy / "sendgrid_api_key.enc").read_text()
    assert "ops@example.com" not in env_enc
    assert "WATCHKEEPER_EMAIL_TO=ENC[" in env_enc, "names readable, values encrypted"
    assert KEY not in key_enc
    staged = sh("git diff --cached --name-only", deploy, home).stdout.split()
    assert sorted(staged) == [".env.enc", ".sops.yaml", "sendgrid_api_key.enc"]

    (deploy / ".env").unlink()
    shutil.rmtree(deploy / "secrets")
    host_lines = [line for line in decrypt.splitlines() if not line.startswith("docker ")]
    sh("\n".join(host_lines), deploy, home)
    # SOPS' dotenv format keeps every variable and comment, in order, but not blank lines.
    restored = (deploy / ".env").read_text().splitlines()
    assert restored == [line for line in env_text.splitlines() if line.strip()]
    key_file = deploy / "secrets" / "sendgrid_api_key"
    assert key_file.read_text() == KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((deploy / ".env").stat().st_mode) == 0o600


def test_decryption_needs_the_host_key(tmp_path: Path) -> None:
    """Without the host's age key (another HOME), the decrypt commands fail: nothing written."""
    tools_or_skip()
    host_key, sops_yaml, encrypt, decrypt = (code for _, code in section_blocks())
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir()
    other.mkdir()
    deploy = tmp_path / "deploy"
    (deploy / "secrets").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(deploy)], check=True)
    (deploy / ".env").write_text("WATCHKEEPER_EMAIL_TO=ops@example.com\n")
    (deploy / "secrets" / "sendgrid_api_key").write_text(KEY)
    sh(host_key, deploy, home)
    public = sh("age-keygen -y ~/.config/sops/age/keys.txt", deploy, home).stdout.strip()
    (deploy / ".sops.yaml").write_text(sops_yaml.replace("age1...", public))
    sh(encrypt, deploy, home)
    (deploy / ".env").unlink()
    shutil.rmtree(deploy / "secrets")
    with pytest.raises(AssertionError):
        sh(decrypt.splitlines()[0] + "\n" + decrypt.splitlines()[2], deploy, other)
    assert not (deploy / ".env").exists()
