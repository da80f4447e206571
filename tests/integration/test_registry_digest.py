"""Integration tests of RegistryClient against a real registry and a local token server.

The CNCF registry (conftest's ``registry``) proves the HEAD-only promise through its access log;
an htpasswd registry proves Basic auth with credentials from ``config.json``; a tiny
``http.server`` in this module plays a registry with a Bearer token service, which the
distribution registry cannot do without a token server of its own.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import bcrypt
import docker
import pytest
import structlog

from tests.conftest import ImageFactory, Registry, remove_images_of, start_registry
from watchkeeper.errors import RegistryAuthError, RegistryError
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import MANIFEST_ACCEPT, InsecurePolicy, RegistryClient
from watchkeeper.registry.reference import parse_reference

USER, PASSWORD = "wk-user", "wk-Pa55word-secret"
TOKEN = "tok-0123456789-secret"
BUSY = 'CMD ["sleep", "3600"]'


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _docker_config(folder: Path, host: str, user: str, password: str) -> str:
    """Write a config.json with ``auths`` for ``host``; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    auths = {f"http://{host}": {"auth": _b64(f"{user}:{password}")}}
    (folder / "config.json").write_text(json.dumps({"auths": auths}))
    return str(folder)


def requests_sent(client: RegistryClient) -> int:
    """Every HTTP request the client sent so far, to any registry (tokens, redirects too)."""
    return sum(client.requests_by_registry.values())


def _wait_for_requests(registry: Registry, count: int, timeout: float = 5.0) -> None:
    """Wait until the access log holds ``count`` requests (it is written asynchronously)."""
    deadline = time.monotonic() + timeout
    while len(registry.requests()) < count and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def insecure(docker_client: docker.DockerClient) -> InsecurePolicy:
    """The policy the real engine's ``docker info`` gives."""
    return InsecurePolicy.from_engines_info([docker_client.info()])


@pytest.fixture
def anonymous(tmp_path: Path) -> CredentialStore:
    """A credential store with no credentials at all."""
    return CredentialStore.load(str(tmp_path / "no-docker-config"))


# -- the anonymous CNCF registry ------------------------------------------------------------


@pytest.mark.docker
def test_fetch_remote_digest_pushed_image_sends_only_probe_and_head(
    registry: Registry, images: ImageFactory, insecure: InsecurePolicy, anonymous: CredentialStore
) -> None:
    """The digest equals the pushed one, and the registry saw only GET /v2/ and one HEAD."""
    pushed = images.build_and_push(f"{registry.host}/app:1", BUSY)
    registry.clear_log()
    with RegistryClient(anonymous, insecure=insecure) as client:
        digest = client.fetch_remote_digest(parse_reference(f"{registry.host}/app:1"))
        assert digest == pushed
        assert requests_sent(client) == 2
        assert client.requests_by_registry == {registry.host: 2}
    _wait_for_requests(registry, 2)
    assert registry.requests() == [("GET", "/v2/"), ("HEAD", "/v2/app/manifests/1")]


@pytest.mark.docker
def test_fetch_digests_ten_refs_of_one_image_send_one_head(
    registry: Registry, images: ImageFactory, insecure: InsecurePolicy, anonymous: CredentialStore
) -> None:
    """Ten references to one tag (a pinned spelling included) cost one probe and one HEAD."""
    pushed = images.build_and_push(f"{registry.host}/app:1", BUSY)
    registry.clear_log()
    refs = [parse_reference(f"{registry.host}/app:1") for _ in range(9)]
    refs.append(parse_reference(f"{registry.host}/app:1@{pushed}"))
    with RegistryClient(anonymous, insecure=insecure) as client:
        results = client.fetch_digests(refs)
        assert requests_sent(client) == 2
    assert set(results) == set(refs)
    assert all(value == pushed for value in results.values())
    _wait_for_requests(registry, 2)
    assert registry.requests() == [("GET", "/v2/"), ("HEAD", "/v2/app/manifests/1")]


@pytest.mark.docker
def test_fetch_remote_digest_probe_cached_across_calls(
    registry: Registry, images: ImageFactory, insecure: InsecurePolicy, anonymous: CredentialStore
) -> None:
    """A second check of the same host sends its HEAD only: the /v2/ probe is cached."""
    images.build_and_push(f"{registry.host}/app:1", BUSY)
    ref = parse_reference(f"{registry.host}/app:1")
    with RegistryClient(anonymous, insecure=insecure) as client:
        first = client.fetch_remote_digest(ref)
        assert client.fetch_remote_digest(ref) == first
        assert requests_sent(client) == 3


@pytest.mark.docker
def test_fetch_remote_digest_missing_tag_raises_not_found(
    registry: Registry, images: ImageFactory, insecure: InsecurePolicy, anonymous: CredentialStore
) -> None:
    """A tag the registry does not have raises RegistryError (not an auth error) saying so."""
    images.build_and_push(f"{registry.host}/app:1", BUSY)
    with (
        RegistryClient(anonymous, insecure=insecure) as client,
        pytest.raises(RegistryError, match="not found") as info,
    ):
        client.fetch_remote_digest(parse_reference(f"{registry.host}/app:2"))
    assert not isinstance(info.value, RegistryAuthError)
    assert client.errors_by_registry == {registry.host: 1}


@pytest.mark.docker
def test_fetch_digests_one_missing_image_others_answered(
    registry: Registry, images: ImageFactory, insecure: InsecurePolicy, anonymous: CredentialStore
) -> None:
    """One image's 404 is its own RegistryError; the other images get their digests."""
    app = images.build_and_push(f"{registry.host}/app:1", BUSY)
    other = images.build_and_push(f"{registry.host}/team/other:2", BUSY)
    refs = [
        parse_reference(f"{registry.host}/app:1"),
        parse_reference(f"{registry.host}/team/other:2"),
        parse_reference(f"{registry.host}/gone:1"),
    ]
    with RegistryClient(anonymous, insecure=insecure, concurrency=2) as client:
        results = client.fetch_digests(refs)
        assert client.errors_by_registry == {registry.host: 1}
    assert results[refs[0]] == app
    assert results[refs[1]] == other
    assert isinstance(results[refs[2]], RegistryError)
    assert "gone" in str(results[refs[2]])


@pytest.mark.docker
def test_fetch_remote_digest_stopped_registry_raises_quickly(
    registry: Registry, insecure: InsecurePolicy, anonymous: CredentialStore
) -> None:
    """A registry that is down gives RegistryError naming the image, within the timeout."""
    registry.stop()
    ref = parse_reference(f"{registry.host}/app:1")
    started = time.monotonic()
    with RegistryClient(anonymous, insecure=insecure, timeout=2.0) as client:
        results = client.fetch_digests([ref])
    assert time.monotonic() - started < 5
    assert isinstance(results[ref], RegistryError)
    assert ref.name in str(results[ref])


def test_fetch_remote_digest_stalled_registry_times_out(anonymous: CredentialStore) -> None:
    """A registry that accepts the connection and never answers fails at the read timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with (
            RegistryClient(anonymous, insecure=InsecurePolicy(), timeout=0.5) as client,
            pytest.raises(RegistryError, match="Timeout"),
        ):
            client.fetch_remote_digest(parse_reference(f"{host}/app:1"))
    assert time.monotonic() - started < 3


# -- an htpasswd registry (Basic auth) ------------------------------------------------------


@pytest.fixture
def auth_registry(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Registry]:
    """A registry that wants USER/PASSWORD (bcrypt htpasswd); its images removed afterwards."""
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt()).decode()
    htpasswd.write_text(f"{USER}:$2y${hashed.split('$', 2)[2]}\n")
    reg = start_registry(tmp_path / "auth-registry", htpasswd=htpasswd)
    yield reg
    reg.stop()
    remove_images_of(docker_client, reg.host)


def _push_with_auth(client: docker.DockerClient, repo: str, tag: str) -> str:
    """Push ``repo:tag`` with USER/PASSWORD; return the digest the registry gave it."""
    digest = ""
    auth = {"username": USER, "password": PASSWORD}
    for line in client.api.push(repo, tag, auth_config=auth, stream=True, decode=True):
        assert "error" not in line, line
        digest = (line.get("aux") or {}).get("Digest", digest)
    return digest


@pytest.mark.docker
def test_fetch_remote_digest_htpasswd_with_config_json_credentials(
    auth_registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    insecure: InsecurePolicy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Credentials from $DOCKER_CONFIG/config.json open a Basic-auth registry."""
    images.build(f"{auth_registry.host}/private:1", BUSY)
    pushed = _push_with_auth(docker_client, f"{auth_registry.host}/private", "1")
    monkeypatch.setenv(
        "DOCKER_CONFIG", _docker_config(tmp_path / "dc", auth_registry.host, USER, PASSWORD)
    )
    auth_registry.clear_log()
    with RegistryClient(CredentialStore.load(), insecure=insecure) as client:
        assert client.fetch_remote_digest(parse_reference(f"{auth_registry.host}/private:1")) == (
            pushed
        )
    _wait_for_requests(auth_registry, 2)
    assert auth_registry.requests() == [("GET", "/v2/"), ("HEAD", "/v2/private/manifests/1")]


@pytest.mark.docker
def test_fetch_remote_digest_htpasswd_wrong_password_raises_auth_error(
    auth_registry: Registry, insecure: InsecurePolicy, tmp_path: Path
) -> None:
    """A refused password raises RegistryAuthError; neither message nor logs hold it."""
    store = CredentialStore.load(
        _docker_config(tmp_path / "dc", auth_registry.host, USER, "wrong-secret-pw")
    )
    with (
        structlog.testing.capture_logs() as logs,
        RegistryClient(store, insecure=insecure) as client,
        pytest.raises(RegistryAuthError, match="refused the credentials") as info,
    ):
        client.fetch_remote_digest(parse_reference(f"{auth_registry.host}/private:1"))
    assert "wrong-secret-pw" not in str(info.value)
    assert "wrong-secret-pw" not in repr(logs)
    assert "registry.auth_failed" in [entry["event"] for entry in logs]


@pytest.mark.docker
def test_fetch_remote_digest_htpasswd_no_credentials_raises_auth_error(
    auth_registry: Registry, insecure: InsecurePolicy, anonymous: CredentialStore
) -> None:
    """Without credentials a Basic-auth registry gives RegistryAuthError saying none are set."""
    with (
        RegistryClient(anonymous, insecure=insecure) as client,
        pytest.raises(RegistryAuthError, match="none are configured"),
    ):
        client.fetch_remote_digest(parse_reference(f"{auth_registry.host}/private:1"))


# -- a Bearer-token registry played by http.server -------------------------------------------


class BearerRegistry:
    """A fake registry on 127.0.0.1 whose /v2/ sends a Bearer challenge to its own /token."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.tags = {"1": "sha256:" + "1" * 64, "2": "sha256:" + "2" * 64}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Keep the test output quiet."""

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                if self.path == "/v2/":
                    self._answer(401, challenge=True)
                elif self.path.startswith("/token?"):
                    self._token()
                else:
                    self._answer(404)

            def do_HEAD(self) -> None:
                fake.requests.append(("HEAD", self.path))
                tag = self.path.removeprefix("/v2/team/app/manifests/")
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, challenge=True)
                elif self.headers.get("Accept") != MANIFEST_ACCEPT or tag not in fake.tags:
                    self._answer(404)
                else:
                    self._answer(200, {"Docker-Content-Digest": fake.tags[tag]})

            def _token(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                basic = "Basic " + _b64(f"{USER}:{PASSWORD}")
                if self.headers.get("Authorization") != basic:
                    self._answer(401)
                elif query != {"service": ["fake"], "scope": ["repository:team/app:pull"]}:
                    self._answer(403)
                else:
                    body = json.dumps({"token": TOKEN, "expires_in": 300}).encode()
                    self._answer(200, {"Content-Type": "application/json"}, body)

            def _answer(
                self,
                status: int,
                headers: dict[str, str] | None = None,
                body: bytes = b"",
                challenge: bool = False,
            ) -> None:
                self.send_response(status)
                if challenge:
                    realm = f"http://{fake.host}/token"
                    self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="fake"')
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler

    def count(self, method: str, prefix: str) -> int:
        """How many requests with ``method`` had a path starting with ``prefix``."""
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))


@pytest.fixture
def bearer_registry() -> Iterator[BearerRegistry]:
    """The fake Bearer registry, running in a thread for one test."""
    fake = BearerRegistry()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_fetch_remote_digest_bearer_token_fetched_once_for_two_heads(
    bearer_registry: BearerRegistry, tmp_path: Path
) -> None:
    """The token is fetched once with Basic credentials and reused for both HEADs."""
    store = CredentialStore.load(
        _docker_config(tmp_path / "dc", bearer_registry.host, USER, PASSWORD)
    )
    with (
        structlog.testing.capture_logs() as logs,
        RegistryClient(store, insecure=InsecurePolicy()) as client,
    ):
        one = client.fetch_remote_digest(parse_reference(f"{bearer_registry.host}/team/app:1"))
        two = client.fetch_remote_digest(parse_reference(f"{bearer_registry.host}/team/app:2"))
    assert requests_sent(client) == 4
    assert (one, two) == (bearer_registry.tags["1"], bearer_registry.tags["2"])
    assert bearer_registry.count("GET", "/v2/") == 1
    assert bearer_registry.count("GET", "/token") == 1
    assert bearer_registry.count("HEAD", "/v2/team/app/manifests/") == 2
    assert TOKEN not in repr(logs)
    assert PASSWORD not in repr(logs)


def test_fetch_digests_bearer_concurrent_checks_probe_and_token_once(
    bearer_registry: BearerRegistry, tmp_path: Path
) -> None:
    """Many parallel checks of one repository share one /v2/ probe and one token."""
    bearer_registry.tags.update({str(n): f"sha256:{n:064d}" for n in range(3, 9)})
    store = CredentialStore.load(
        _docker_config(tmp_path / "dc", bearer_registry.host, USER, PASSWORD)
    )
    refs = [parse_reference(f"{bearer_registry.host}/team/app:{t}") for t in bearer_registry.tags]
    with RegistryClient(store, insecure=InsecurePolicy(), concurrency=8) as client:
        results = client.fetch_digests(refs)
    assert results == {ref: bearer_registry.tags[ref.tag or ""] for ref in refs}
    assert bearer_registry.count("GET", "/v2/") == 1
    assert bearer_registry.count("GET", "/token") == 1
    assert bearer_registry.count("HEAD", "/v2/") == len(refs)


def test_fetch_remote_digest_bearer_wrong_password_raises_auth_error(
    bearer_registry: BearerRegistry, tmp_path: Path
) -> None:
    """A token endpoint refusing the credentials raises RegistryAuthError; no HEAD is sent."""
    store = CredentialStore.load(
        _docker_config(tmp_path / "dc", bearer_registry.host, USER, "not-the-password")
    )
    with (
        RegistryClient(store, insecure=InsecurePolicy()) as client,
        pytest.raises(RegistryAuthError, match="refused the credentials") as info,
    ):
        client.fetch_remote_digest(parse_reference(f"{bearer_registry.host}/team/app:1"))
    assert "not-the-password" not in str(info.value)
    assert bearer_registry.count("HEAD", "/") == 0


def test_fetch_remote_digest_bearer_anonymous_raises_auth_error(
    bearer_registry: BearerRegistry, anonymous: CredentialStore
) -> None:
    """Without credentials the token endpoint's 401 becomes RegistryAuthError."""
    with (
        RegistryClient(anonymous, insecure=InsecurePolicy()) as client,
        pytest.raises(RegistryAuthError, match="none are configured"),
    ):
        client.fetch_remote_digest(parse_reference(f"{bearer_registry.host}/team/app:1"))
