"""The docker-py client an engine is reached with: requests reads the environment (proxies,
``.netrc``) for a ``tcp://`` engine, never for a local socket. No engine is needed: a client
with an explicit API version sends nothing when it is made."""

from __future__ import annotations

import pytest

from watchkeeper.containers import engine as engine_module


@pytest.mark.parametrize(
    ("url", "reads_environment"),
    [
        ("unix:///var/run/docker.sock", False),
        ("unix:///run/watchkeeper-test/docker26.sock", False),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://docker.example.com:2376", True),
    ],
)
def test_client_reads_environment_for_tcp_engines_only(url: str, reads_environment: bool) -> None:
    """A proxy (``HTTPS_PROXY``/``NO_PROXY``) or a ``.netrc`` entry may be how a remote engine
    is reached; neither applies to a socket, where the lookups only cost every request."""
    client = engine_module._client(url, "1.41", 5.0, None)  # noqa: SLF001
    try:
        assert client.api.trust_env is reads_environment
        assert client.api.base_url.startswith("http")
    finally:
        client.close()
