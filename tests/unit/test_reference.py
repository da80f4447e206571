"""Unit tests of image reference parsing and normalisation (docker's reference grammar)."""

from __future__ import annotations

import pytest

from watchkeeper.registry.reference import Reference, is_image_id, parse_reference

SHA = "sha256:" + "a" * 64
SHA_B = "sha256:" + "0123456789abcdef" * 4

VALID = [
    # Each: the text, then its registry, repository, tag and digest.
    ("nginx", "docker.io", "library/nginx", "latest", None),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
    ("library/nginx", "docker.io", "library/nginx", "latest", None),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
    ("docker.io/library/nginx:stable", "docker.io", "library/nginx", "stable", None),
    ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
    ("registry-1.docker.io/library/redis:7", "docker.io", "library/redis", "7", None),
    ("INDEX.DOCKER.IO/acme/app", "docker.io", "acme/app", "latest", None),
    ("acme/app:2", "docker.io", "acme/app", "2", None),
    ("acme/team/app", "docker.io", "acme/team/app", "latest", None),
    ("ghcr.io/a/b/c:1", "ghcr.io", "a/b/c", "1", None),
    ("ghcr.io/a/b/c", "ghcr.io", "a/b/c", "latest", None),
    ("quay.io/org/img:v1.2.3-rc.1", "quay.io", "org/img", "v1.2.3-rc.1", None),
    ("127.0.0.1:5000/app:1", "127.0.0.1:5000", "app", "1", None),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/team/app:dev", "localhost:5000", "team/app", "dev", None),
    ("myhost:5000/app", "myhost:5000", "app", "latest", None),
    ("Registry.Example.COM/app", "registry.example.com", "app", "latest", None),
    ("MyHost/app", "myhost", "app", "latest", None),
    ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None),
    (
        "my-registry.example.com:443/a_b/c__d/e--f/g.h:T_ag",
        "my-registry.example.com:443",
        "a_b/c__d/e--f/g.h",
        "T_ag",
        None,
    ),
    (f"nginx@{SHA}", "docker.io", "library/nginx", None, SHA),
    (f"nginx:1.25@{SHA}", "docker.io", "library/nginx", "1.25", SHA),
    (f"127.0.0.1:5000/app@{SHA_B}", "127.0.0.1:5000", "app", None, SHA_B),
    (f"ghcr.io/a/b:1@{SHA}", "ghcr.io", "a/b", "1", SHA),
    ("  nginx:1  ", "docker.io", "library/nginx", "1", None),
    ("deadbeefcafe", "docker.io", "library/deadbeefcafe", "latest", None),
]

INVALID = [
    "",
    "   ",
    "Nginx",
    "acme/App:1",
    "nginx:",
    "nginx:-bad",
    "nginx:" + "t" * 129,
    "nginx@sha256:abc",
    "nginx@sha256:" + "A" * 64,
    "nginx@" + "a" * 64,
    "nginx@md5",
    "@" + SHA,
    "/nginx",
    "nginx/",
    "acme//app",
    "ghcr.io/",
    "-host.io/app",
    "host.io:port/app",
    "nginx latest",
    "app!",
    "a" * 64,
    "ghcr.io/" + "a" * 250,
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), VALID)
def test_parse_reference_valid_text_normalises(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    """A valid reference parses into its normalised registry, repository, tag and digest."""
    assert parse_reference(text) == Reference(registry, repository, tag, digest)


@pytest.mark.parametrize("text", INVALID)
def test_parse_reference_garbage_raises_value_error(text: str) -> None:
    """Text outside docker's reference grammar raises ValueError naming the reference."""
    with pytest.raises(ValueError, match="invalid image reference"):
        parse_reference(text)


def test_parse_reference_uppercase_repository_says_lowercase() -> None:
    """An upper-case repository gets the same hint docker gives: must be lowercase."""
    with pytest.raises(ValueError, match="must be lowercase"):
        parse_reference("ghcr.io/Acme/app")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("ghcr.io/a/b/c:1", "ghcr.io/a/b/c:1"),
        (f"nginx:1@{SHA}", f"docker.io/library/nginx:1@{SHA}"),
        (f"127.0.0.1:5000/app@{SHA}", f"127.0.0.1:5000/app@{SHA}"),
    ],
)
def test_reference_name_any_form_is_canonical(text: str, name: str) -> None:
    """``name`` (and ``str()``) spell the fully qualified canonical reference."""
    ref = parse_reference(text)
    assert ref.name == name
    assert str(ref) == name


@pytest.mark.parametrize(
    "text", ["nginx", "index.docker.io/nginx:latest", "docker.io/library/nginx"]
)
def test_parse_reference_hub_spellings_are_equal(text: str) -> None:
    """Every spelling of the same Hub image parses to one equal, hashable reference."""
    ref = parse_reference(text)
    assert ref == parse_reference("nginx:latest")
    assert len({ref, parse_reference("nginx:latest")}) == 1


@pytest.mark.parametrize(
    ("text", "api_host"),
    [
        ("nginx", "registry-1.docker.io"),
        ("ghcr.io/a/b", "ghcr.io"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000"),
    ],
)
def test_reference_api_host_hub_uses_registry_1(text: str, api_host: str) -> None:
    """Docker Hub's API lives at registry-1.docker.io; other registries at their own host."""
    assert parse_reference(text).api_host == api_host


@pytest.mark.parametrize(
    ("text", "pinned"),
    [("nginx", False), ("nginx:1", False), (f"nginx@{SHA}", True), (f"nginx:1@{SHA}", True)],
)
def test_reference_is_pinned_with_digest_true(text: str, pinned: bool) -> None:
    """A reference is pinned exactly when it names a digest."""
    assert parse_reference(text).is_pinned is pinned


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SHA, True),
        ("sha256:" + "0" * 64, True),
        ("0123456789ab", True),
        ("a" * 64, True),
        ("0123456789abcdef0123", True),
        ("0123456789a", False),
        ("a" * 65, False),
        ("sha256:abc", False),
        ("0123456789AB", False),
        ("nginx", False),
        ("nginx:latest", False),
        ("deadbeefcafz", False),
        (f"nginx@{SHA}", False),
        ("", False),
    ],
)
def test_is_image_id_id_forms_true_names_false(text: str, expected: bool) -> None:
    """Full and 12-64 hex image IDs are recognised; references and short hex are not."""
    assert is_image_id(text) is expected
