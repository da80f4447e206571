"""Unit tests of registry credentials, auth challenges, token caching and the insecure policy.

No sockets: ``config.json`` lives in a temp dir, and credential helpers are tiny shell scripts
put first on ``PATH``.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import structlog

from watchkeeper.errors import ConfigError, RegistryAuthError
from watchkeeper.registry.auth import (
    Challenge,
    Credentials,
    CredentialStore,
    TokenCache,
    basic_authorization,
    normalise_server,
    parse_token_response,
    parse_www_authenticate,
    to_docker_auth_config,
)
from watchkeeper.registry.digest import InsecurePolicy

# What `docker info` answered on an engine started with
# `--insecure-registry 10.20.0.0/16 --insecure-registry myreg.local:5000`.
RECORDED_REGISTRY_CONFIG = {
    "AllowNondistributableArtifactsCIDRs": None,
    "AllowNondistributableArtifactsHostnames": None,
    "InsecureRegistryCIDRs": ["10.20.0.0/16", "127.0.0.0/8"],
    "IndexConfigs": {
        "docker.io": {"Mirrors": [], "Name": "docker.io", "Official": True, "Secure": True},
        "myreg.local:5000": {
            "Mirrors": [],
            "Name": "myreg.local:5000",
            "Official": False,
            "Secure": False,
        },
    },
    "Mirrors": [],
}

HELPER_SCRIPT = """#!/bin/sh
[ "$1" = get ] || exit 3
read -r server
echo "$server" >> "$FAKE_HELPER_LOG"
case "$server" in
  "https://index.docker.io/v1/") echo '{"Username":"hubuser","Secret":"hub-s3cret"}';;
  ghcr.io) echo '{"ServerURL":"ghcr.io","Username":"ghuser","Secret":"gh-s3cret"}';;
  http://legacy.example.com) echo '{"ServerURL":"x","Username":"legacy","Secret":"l-s3cret"}';;
  slow.example.com) exec sleep 5;;
  broken.example.com) echo "keychain locked" >&2; exit 2;;
  garbage.example.com) echo 'not json';;
  *) echo "credentials not found in native keychain"; exit 1;;
esac
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _write_config(folder: Path, config: dict[str, object]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.fixture
def fake_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install ``docker-credential-fake`` first on PATH; return the file it logs servers to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-fake"
    script.write_text(HELPER_SCRIPT)
    script.chmod(0o755)
    helper_log = tmp_path / "helper.log"
    helper_log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_HELPER_LOG", str(helper_log))
    return helper_log


# -- WWW-Authenticate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
            [
                Challenge(
                    "bearer",
                    {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"},
                )
            ],
        ),
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
            'scope="repository:user/image:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://ghcr.io/token",
                        "service": "ghcr.io",
                        "scope": "repository:user/image:pull",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        ("BASIC Realm=simple", [Challenge("basic", {"realm": "simple"})]),
        (
            'Bearer realm = "http://h/token" , service="a \\"quoted\\" one, with comma"',
            [
                Challenge(
                    "bearer", {"realm": "http://h/token", "service": 'a "quoted" one, with comma'}
                )
            ],
        ),
        (
            'Basic realm="basic", Bearer realm="https://t/token",service="s"',
            [
                Challenge("basic", {"realm": "basic"}),
                Challenge("bearer", {"realm": "https://t/token", "service": "s"}),
            ],
        ),
        ("Bearer", [Challenge("bearer", {})]),
        ("", []),
        ('realm="no scheme"', []),
    ],
)
def test_parse_www_authenticate_header_yields_challenges(
    header: str, expected: list[Challenge]
) -> None:
    """Schemes are lower-cased, quoted values unescaped, several challenges kept in order."""
    assert parse_www_authenticate(header) == expected


def test_challenge_properties_bearer_expose_realm_and_service() -> None:
    """``realm`` and ``service`` read the challenge's parameters, None when absent."""
    (challenge,) = parse_www_authenticate('Bearer realm="https://a/token",service="svc"')
    assert (challenge.realm, challenge.service) == ("https://a/token", "svc")
    assert Challenge("basic").service is None


# -- Credentials ----------------------------------------------------------------------------


def test_credentials_repr_hides_password() -> None:
    """Neither repr nor str of Credentials contain the password."""
    creds = Credentials("alice", "hunter2-secret")
    assert "hunter2-secret" not in repr(creds)
    assert "hunter2-secret" not in str(creds)
    assert "alice" in repr(creds)


def test_to_docker_auth_config_credentials_username_password_dict() -> None:
    """docker-py's auth_config is a username/password dict."""
    assert to_docker_auth_config(Credentials("u", "p")) == {"username": "u", "password": "p"}


def test_basic_authorization_credentials_base64_header() -> None:
    """The Basic header is base64 of ``user:password``."""
    assert basic_authorization(Credentials("u", "p:w")) == "Basic " + _b64("u:p:w")


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("https://registry-1.docker.io/v2/", "docker.io"),
        ("docker.io", "docker.io"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://Registry.Example.com/v2/some/path", "registry.example.com"),
        ("ghcr.io", "ghcr.io"),
        ("localhost:5000/v1/", "localhost:5000"),
    ],
)
def test_normalise_server_key_variants_give_host(key: str, host: str) -> None:
    """Every spelling docker login writes normalises to host[:port], Hub to docker.io."""
    assert normalise_server(key) == host


# -- config.json ----------------------------------------------------------------------------


def test_credential_store_auths_base64_and_fields_found(tmp_path: Path) -> None:
    """``auth`` base64 and ``username``/``password`` entries both yield credentials per host."""
    folder = _write_config(
        tmp_path / "cfg",
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": _b64("hubuser:hub:pass")},
                "http://127.0.0.1:5000/v2/": {"auth": _b64("local:pw")},
                "ghcr.io": {"username": "gh", "password": "ghpw"},
                "empty.example.com": {},
            }
        },
    )
    store = CredentialStore.load(folder)
    assert store.lookup("docker.io") == Credentials("hubuser", "hub:pass")
    assert store.lookup("index.docker.io") == Credentials("hubuser", "hub:pass")
    assert store.lookup("127.0.0.1:5000") == Credentials("local", "pw")
    assert store.lookup("ghcr.io") == Credentials("gh", "ghpw")
    assert store.lookup("empty.example.com") is None
    assert store.lookup("quay.io") is None


def test_credential_store_plain_host_key_wins_over_url_key(tmp_path: Path) -> None:
    """When two keys name one host, the bare host[:port] key is the one used."""
    folder = _write_config(
        tmp_path / "cfg",
        {
            "auths": {
                "host.example.com": {"auth": _b64("bare:1")},
                "https://host.example.com/v2/": {"auth": _b64("url:2")},
            }
        },
    )
    assert CredentialStore.load(folder).lookup("host.example.com") == Credentials("bare", "1")


def test_credential_store_invalid_base64_skipped_without_secret_in_logs(tmp_path: Path) -> None:
    """A malformed ``auth`` field is skipped with a warning that quotes nothing of it."""
    folder = _write_config(
        tmp_path / "cfg",
        {
            "auths": {
                "bad.example.com": {"auth": "%%%not-base64-s3cret"},
                "nocolon.example.com": {"auth": _b64("justauser")},
            }
        },
    )
    with structlog.testing.capture_logs() as logs:
        store = CredentialStore.load(folder)
    assert store.lookup("bad.example.com") is None
    assert store.lookup("nocolon.example.com") is None
    assert [e["event"] for e in logs] == ["registry.config_auth_invalid"] * 2
    assert "s3cret" not in repr(logs)


def test_credential_store_missing_config_is_anonymous(tmp_path: Path) -> None:
    """No config.json at all means anonymous access everywhere."""
    assert CredentialStore.load(str(tmp_path / "nothing-here")).lookup("docker.io") is None


def test_credential_store_docker_config_env_used_without_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an argument the folder comes from ``$DOCKER_CONFIG``."""
    folder = _write_config(tmp_path / "env", {"auths": {"ghcr.io": {"auth": _b64("e:v")}}})
    monkeypatch.setenv("DOCKER_CONFIG", folder)
    assert CredentialStore.load().lookup("ghcr.io") == Credentials("e", "v")


def test_credential_store_home_docker_used_without_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without argument or ``$DOCKER_CONFIG`` the folder is ``~/.docker``."""
    _write_config(tmp_path / ".docker", {"auths": {"ghcr.io": {"auth": _b64("h:v")}}})
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CredentialStore.load().lookup("ghcr.io") == Credentials("h", "v")


def test_credential_store_repo_user_pass_win_everywhere(tmp_path: Path) -> None:
    """REPO_USER/REPO_PASS, both set, apply to every registry and beat config.json."""
    folder = _write_config(tmp_path / "cfg", {"auths": {"ghcr.io": {"auth": _b64("f:v")}}})
    store = CredentialStore.load(folder, repo_user="wt", repo_pass="wtpw")
    assert store.lookup("ghcr.io") == Credentials("wt", "wtpw")
    assert store.lookup("docker.io") == Credentials("wt", "wtpw")


def test_credential_store_repo_user_alone_is_ignored(tmp_path: Path) -> None:
    """REPO_USER without REPO_PASS is ignored (with a warning), the file still applies."""
    folder = _write_config(tmp_path / "cfg", {"auths": {"ghcr.io": {"auth": _b64("f:v")}}})
    with structlog.testing.capture_logs() as logs:
        store = CredentialStore.load(folder, repo_user="wt")
    assert store.lookup("ghcr.io") == Credentials("f", "v")
    assert logs[0]["event"] == "registry.repo_credentials_incomplete"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_credential_store_malformed_config_raises_config_error(
    tmp_path: Path, content: str
) -> None:
    """A config.json that is not a JSON object is a configuration error naming DOCKER_CONFIG."""
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError) as info:
        CredentialStore.load(str(tmp_path))
    assert info.value.setting == "DOCKER_CONFIG"


# -- credential helpers ---------------------------------------------------------------------


def test_credential_store_creds_store_helper_answers(tmp_path: Path, fake_helper: Path) -> None:
    """``credsStore`` runs ``docker-credential-<name> get`` with Hub's v1 URL for docker.io."""
    folder = _write_config(tmp_path / "cfg", {"credsStore": "fake"})
    store = CredentialStore.load(folder)
    assert store.lookup("docker.io") == Credentials("hubuser", "hub-s3cret")
    assert store.lookup("ghcr.io") == Credentials("ghuser", "gh-s3cret")
    assert fake_helper.read_text().split() == ["https://index.docker.io/v1/", "ghcr.io"]


def test_credential_store_helper_not_found_is_anonymous(tmp_path: Path, fake_helper: Path) -> None:
    """A helper's "credentials not found" answer means anonymous, not an error."""
    folder = _write_config(tmp_path / "cfg", {"credsStore": "fake"})
    assert CredentialStore.load(folder).lookup("quay.io") is None


def test_credential_store_cred_helpers_per_host_beat_auths(
    tmp_path: Path, fake_helper: Path
) -> None:
    """A host's ``credHelpers`` entry is used for it; other hosts keep their ``auths``."""
    folder = _write_config(
        tmp_path / "cfg",
        {
            "auths": {"ghcr.io": {"auth": _b64("file:pw")}, "quay.io": {"auth": _b64("q:pw")}},
            "credHelpers": {"ghcr.io": "fake"},
        },
    )
    store = CredentialStore.load(folder)
    assert store.lookup("ghcr.io") == Credentials("ghuser", "gh-s3cret")
    assert store.lookup("quay.io") == Credentials("q", "pw")


def test_credential_store_helper_gets_original_auths_key(tmp_path: Path, fake_helper: Path) -> None:
    """The helper is asked with the server URL ``docker login`` stored, not the bare host."""
    folder = _write_config(
        tmp_path / "cfg",
        {
            "auths": {"http://legacy.example.com": {}},
            "credsStore": "fake",
        },
    )
    assert CredentialStore.load(folder).lookup("legacy.example.com") == Credentials(
        "legacy", "l-s3cret"
    )


def test_credential_store_slow_helper_times_out(tmp_path: Path, fake_helper: Path) -> None:
    """A helper that hangs is killed after the timeout and raises RegistryAuthError."""
    folder = _write_config(tmp_path / "cfg", {"credHelpers": {"slow.example.com": "fake"}})
    store = CredentialStore.load(folder, helper_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(RegistryAuthError, match="TimeoutExpired"):
        store.lookup("slow.example.com")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("helper", "host", "message"),
    [
        ("fake", "broken.example.com", "exited 2"),
        ("fake", "garbage.example.com", "no JSON"),
        ("missing", "ghcr.io", "docker-credential-missing failed"),
        ("../fake", "ghcr.io", "invalid credential helper name"),
    ],
)
def test_credential_store_failing_helper_raises_auth_error(
    tmp_path: Path, fake_helper: Path, helper: str, host: str, message: str
) -> None:
    """A helper that fails, answers garbage, is missing or badly named raises RegistryAuthError."""
    folder = _write_config(tmp_path / "cfg", {"credHelpers": {host: helper}})
    with pytest.raises(RegistryAuthError, match=message):
        CredentialStore.load(folder).lookup(host)


# -- token responses and the token cache ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"token": "t1", "expires_in": 300}', ("t1", 300.0)),
        (b'{"access_token": "t2"}', ("t2", None)),
        (b'{"token": "", "access_token": "t3", "expires_in": "soon"}', ("t3", None)),
        (b'{"token": "t4", "expires_in": true}', ("t4", None)),
    ],
)
def test_parse_token_response_token_fields_read(
    body: bytes, expected: tuple[str, float | None]
) -> None:
    """``token`` or ``access_token`` is the token; a numeric ``expires_in`` is kept."""
    assert parse_token_response(body) == expected


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"expires_in": 60}', b'{"token": 5}'])
def test_parse_token_response_no_token_raises_value_error(body: bytes) -> None:
    """An answer without a string token raises ValueError."""
    with pytest.raises(ValueError, match="no"):
        parse_token_response(body)


def test_token_cache_expiry_drops_token_before_deadline() -> None:
    """A token is served until ``expires_in`` minus the margin, then dropped."""
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put("k", "tok", 300)
    now[0] += 289
    assert cache.get("k") == "tok"
    now[0] += 1
    assert cache.get("k") is None


def test_token_cache_no_expiry_defaults_to_sixty_seconds() -> None:
    """Without ``expires_in`` a token lives 60 s minus the margin; discard forgets it at once."""
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put("k", "tok", None)
    now[0] = 49.0
    assert cache.get("k") == "tok"
    now[0] = 50.0
    assert cache.get("k") is None
    cache.put("k", "tok2", 3600)
    cache.discard("k")
    assert cache.get("k") is None


# -- the insecure-registry policy -----------------------------------------------------------


@pytest.mark.parametrize(
    ("registry", "insecure"),
    [
        ("myreg.local:5000", True),
        ("myreg.local", False),
        ("10.20.3.4:5000", True),
        ("10.21.0.1:5000", False),
        ("127.0.0.1:5000", True),
        ("127.5.5.5", True),
        ("localhost:5000", True),
        ("LOCALHOST", True),
        ("[::1]:5000", True),
        ("docker.io", False),
        ("ghcr.io", False),
    ],
)
def test_insecure_policy_recorded_engine_info_classifies(registry: str, insecure: bool) -> None:
    """Insecure index configs, insecure CIDRs and loopback: HTTPS unverified, then plain HTTP."""
    policy = InsecurePolicy.from_engines_info([{"RegistryConfig": RECORDED_REGISTRY_CONFIG}])
    assert policy.is_insecure(registry) is insecure
    assert policy.schemes(registry) == (("https", "http") if insecure else ("https",))


def test_insecure_policy_empty_info_only_loopback() -> None:
    """Without RegistryConfig only loopback is insecure; bad CIDRs are skipped."""
    policy = InsecurePolicy.from_engines_info([{}])
    assert policy.is_insecure("127.0.0.1:5000")
    assert not policy.is_insecure("10.20.0.1")
    broken = InsecurePolicy.from_engines_info(
        [{"RegistryConfig": {"InsecureRegistryCIDRs": ["nonsense", "192.168.0.0/16"]}}]
    )
    assert broken.is_insecure("192.168.1.1:5000")


def test_insecure_policy_every_engine_info_merged() -> None:
    """A registry insecure on any engine watched is insecure for the check; loopback stays."""
    first = {"RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}}}
    policy = InsecurePolicy.from_engines_info([first, {"RegistryConfig": RECORDED_REGISTRY_CONFIG}])
    assert policy.is_insecure("myreg.local:5000")
    assert policy.is_insecure("10.20.3.4:5000")
    assert policy.is_insecure("127.0.0.1:5000")
    assert not policy.is_insecure("ghcr.io")


def test_insecure_policy_no_networks_verifies_loopback() -> None:
    """``networks=()`` is an engine verifying every registry, loopback and localhost included."""
    policy = InsecurePolicy(networks=())
    assert not policy.is_insecure("127.0.0.1:5000")
    assert not policy.is_insecure("localhost:5000")
    assert policy.schemes("127.0.0.1:5000") == ("https",)


# -- REPO_USER/REPO_PASS scoped by REPO_HOST ------------------------------------------------


def test_lookup_repo_host_set_other_registry_uses_config_json(tmp_path: Path) -> None:
    """REPO_USER/REPO_PASS answer for REPO_HOST's registries; others get config.json's."""
    folder = _write_config(tmp_path / "dc", {"auths": {"other.example.com": {"auth": _b64("o:p")}}})
    store = CredentialStore.load(
        folder, "repo-user", "repo-pass", repo_hosts=["https://Private.Example.com:5000/v2/"]
    )
    assert store.lookup("private.example.com:5000") == Credentials("repo-user", "repo-pass")
    assert store.lookup("other.example.com") == Credentials("o", "p")
    assert store.lookup("ghcr.io") is None
    assert not store.unscoped


def test_lookup_repo_host_docker_hub_alias_matches(tmp_path: Path) -> None:
    """REPO_HOST=index.docker.io names Docker Hub, as docker.io references spell it."""
    store = CredentialStore.load(str(tmp_path / "none"), "u", "p", repo_hosts=["index.docker.io"])
    assert store.lookup("docker.io") == Credentials("u", "p")
    assert store.lookup("quay.io") is None


def test_lookup_no_repo_host_repo_credentials_everywhere_unscoped(tmp_path: Path) -> None:
    """Without REPO_HOST, REPO_USER/REPO_PASS go to every registry (Watchtower's way)."""
    store = CredentialStore.load(str(tmp_path / "none"), "u", "p")
    assert store.lookup("quay.io") == Credentials("u", "p")
    assert store.lookup("127.0.0.1:5000") == Credentials("u", "p")
    assert store.unscoped
    assert not CredentialStore.load(str(tmp_path / "none")).unscoped
