"""Derive inspect JSON of engines that cannot run here (Docker 28 and 29) from the 26.1 recording.

Only Engine 20.10 (API 1.41) and 26.1 (API 1.45) run on the test machines, so the shapes of
Docker 28.0 (API 1.48, classic image store) and Docker 29 (API 1.52 and 1.54, containerd image
store, the default of fresh 29 installs) are written from ``inspect-api1.45.json`` by the
changes moby's API definitions and daemon source document. Run it after a new 1.45 recording
and commit what it writes::

    .venv/bin/python tests/unit/data/derive_inspect.py

Every change, with where it comes from (moby/moby tags; ``api/swagger.yaml`` and
``api/docs/CHANGELOG.md`` at those tags):

API 1.48 (tag v28.0.0, Docker 28.0):

- Every bridge endpoint gets a random MAC (``libnetwork/netutils/utils.go``
  ``GenerateRandomMAC``, used by ``libnetwork/drivers/bridge/bridge_linux.go``; 26.1 made
  ``02:42:`` + the IPv4 bytes). A MAC the user gave stays: the daemon keeps it as the
  endpoint's ``DesiredMacAddress`` (``daemon/network/settings.go``), which is not in the API.
- ``Config.MacAddress`` is that desired MAC of the ``NetworkMode`` network, filled in by the
  inspect for API < 1.52 (``daemon/inspect.go`` ``getInspectData``): unchanged from 26.1.
- ``EndpointSettings.GwPriority`` (swagger 1.48, ``EndpointSettings``).
- ``ImageManifestDescriptor`` is only filled by a multi-platform (containerd) image store
  (CHANGELOG v1.48): absent here, 28 defaults to the classic store.

API 1.52 (tag docker-v29.0.0, Docker 29.0), on top of 1.48:

- ``NetworkSettings`` loses ``Bridge``, ``HairpinMode``, ``LinkLocalIPv6Address``,
  ``LinkLocalIPv6PrefixLen``, ``SecondaryIPAddresses``, ``SecondaryIPv6Addresses``,
  ``EndpointID``, ``Gateway``, ``GlobalIPv6Address``, ``GlobalIPv6PrefixLen``, ``IPAddress``,
  ``IPPrefixLen``, ``IPv6Gateway`` and ``MacAddress`` (CHANGELOG v1.52; swagger 1.52
  ``NetworkSettings``: ``SandboxID``, ``SandboxKey``, ``Ports``, ``Networks`` only).
- ``Config.MacAddress`` is gone from ``ContainerConfig`` (swagger 1.52; the inspect adds it
  only below 1.52, ``daemon/server/router/container/inspect.go``), and create refuses it
  ("container-wide MAC address no longer supported", ``container_routes.go``
  ``handleMACAddressBC``).
- Container ``Config.OnBuild`` omitted when empty (CHANGELOG v1.52).
- Containerd image store: the image ID is the digest of the image's target, the OCI index
  or manifest (``daemon/containerd/image_inspect.go``: ``ID: target.Digest``), shown as
  ``Descriptor`` (swagger 1.52 ``ImageInspect.Descriptor``, ``OCIDescriptor``); every tag
  gets a ``RepoDigests`` entry ``name@<that digest>``, locally built images included
  (``collectRepoTagsAndDigests``), and a dangling image gets none. Container inspect names
  the image by that ID and has ``ImageManifestDescriptor`` (the platform manifest run) and
  ``Storage`` instead of ``GraphDriver`` (swagger 1.52 ``ContainerInspectResponse``).
- Image inspect omits ``Config`` ``Cmd``, ``Entrypoint``, ``Env``, ``Labels``, ``OnBuild``,
  ``User``, ``Volumes`` and ``WorkingDir`` when empty, and ``Parent``, ``Comment``,
  ``DockerVersion``, ``Author`` when empty (CHANGELOG v1.52); ``Hostname``, ``Domainname``,
  ``AttachStd*``, ``Tty``, ``OpenStdin``, ``StdinOnce``, ``Image``, ``NetworkDisabled``,
  ``MacAddress``, ``StopTimeout`` were dropped from it in 1.50 (CHANGELOG v1.50; swagger 1.52
  ``ImageConfig``).

API 1.54 (tag docker-v29.3.0, Docker 29.3), on top of 1.52:

- Image ``Identity`` (swagger 1.53 ``Identity``, ``BuildIdentity``, ``PullIdentity``;
  CHANGELOG v1.53), filled from the content labels (``imageIdentity``): ``Build`` for an image
  built here, ``Pull`` for the repositories it was pulled from or pushed to, omitted when the
  engine knows neither (``docker load``).
- Network connect honours an endpoint ``MacAddress`` (CHANGELOG v1.54): nothing in inspect.

Besides the recorded images, each derived file has ``image_origins``: the old image as a
local build, as pulled from a registry, as dangling after its tag moved, and as loaded from a
tarball, in that engine's shape; and ``version``, the ``GET /version`` answer of such an engine
(swagger ``SystemVersion``; the 29.0 minimum API 1.44 is ``defaultMinAPIVersion`` in
``daemon/config/config.go`` at docker-v29.0.0).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SOURCE = HERE / "inspect-api1.45.json"
REGISTRY_REPO = "registry.example.test/wk-record/app"

_SETTINGS_GONE_152 = (
    "Bridge", "HairpinMode", "LinkLocalIPv6Address", "LinkLocalIPv6PrefixLen",
    "SecondaryIPAddresses", "SecondaryIPv6Addresses", "EndpointID", "Gateway",
    "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen", "IPv6Gateway",
    "MacAddress",
)  # fmt: skip
_IMAGE_CONFIG_GONE_150 = (
    "Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
    "OpenStdin", "StdinOnce", "Image", "NetworkDisabled", "MacAddress", "StopTimeout",
)  # fmt: skip
_IMAGE_CONFIG_OMITTED_EMPTY_152 = (
    "Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes", "WorkingDir",
)  # fmt: skip
_IMAGE_OMITTED_EMPTY_152 = ("Parent", "Comment", "DockerVersion", "Author")
_INDEX = "application/vnd.oci.image.index.v1+json"
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_PLATFORM = {"architecture": "amd64", "os": "linux"}


def digest_of(text: str) -> str:
    """A stable made-up ``sha256:`` digest for ``text``."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def random_mac(seed: str) -> str:
    """A stable stand-in for ``GenerateRandomMAC``: locally administered, unicast."""
    raw = bytearray(hashlib.sha256(seed.encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{byte:02x}" for byte in raw)


def to_api_148(record: dict[str, Any]) -> dict[str, Any]:
    """Docker 28.0: random endpoint MACs (the user's kept), ``GwPriority``."""
    out = copy.deepcopy(record)
    out.update(api_version="1.48", engine_version="28.0.0 (derived from 26.1.5)")
    for container in out["containers"].values():
        _randomise_macs(container)
    out["image_origins"] = _origins_classic(out["old_image"])
    out["version"] = _version("28.0.0", "1.48", "1.24")
    return out


def _randomise_macs(container: dict[str, Any]) -> None:
    """Give every endpoint whose MAC the user did not set a random one, as 28+ does."""
    desired = (container.get("Config") or {}).get("MacAddress") or None
    settings = container.get("NetworkSettings") or {}
    for name, endpoint in (settings.get("Networks") or {}).items():
        endpoint["GwPriority"] = 0
        mac = endpoint.get("MacAddress") or ""
        if mac and mac != desired:
            endpoint["MacAddress"] = random_mac(container["Id"] + name)
            if name == "bridge" and settings.get("MacAddress"):
                settings["MacAddress"] = endpoint["MacAddress"]


def _origins_classic(image: dict[str, Any]) -> dict[str, Any]:
    """The old image's origins on the classic store: digests only from a pull or push."""
    built = copy.deepcopy(image)
    built["RepoDigests"] = []
    pulled = copy.deepcopy(image)
    pulled["RepoTags"] = [f"{REGISTRY_REPO}:1"]
    pulled["RepoDigests"] = [f"{REGISTRY_REPO}@{digest_of('manifest:' + image['Id'])}"]
    dangling = copy.deepcopy(pulled)
    dangling["RepoTags"] = []
    loaded = copy.deepcopy(built)
    return {"built": built, "pulled": pulled, "dangling": dangling, "loaded": loaded}


def to_api_152(record: dict[str, Any]) -> dict[str, Any]:
    """Docker 29.0 on the containerd image store."""
    out = to_api_148(record)
    out.update(api_version="1.52", engine_version="29.0.0 (derived from 26.1.5)")
    ids = {img["Id"]: index_digest(img) for img in (out["old_image"], out["new_image"])}
    for container in out["containers"].values():
        _container_152(container, ids)
    out["image_origins"] = {
        name: _image_152(image, synthesize=name != "dangling")
        for name, image in _origins_classic(out["old_image"]).items()
    }
    out["old_image"] = _image_152(out["old_image"], synthesize=True)
    out["new_image"] = _image_152(out["new_image"], synthesize=True)
    out["version"] = _version("29.0.0", "1.52", "1.44")
    return out


def index_digest(image: dict[str, Any]) -> str:
    """The digest of the OCI index the containerd store keeps ``image`` under (its new ID)."""
    return digest_of("index:" + image["Id"])


def _container_152(container: dict[str, Any], ids: dict[str, str]) -> None:
    """Container inspect at 1.52 from the 1.48 shape."""
    settings = container["NetworkSettings"]
    for key in _SETTINGS_GONE_152:
        settings.pop(key, None)
    config = container["Config"]
    config.pop("MacAddress", None)
    if not config.get("OnBuild"):
        config.pop("OnBuild", None)
    old_id = container["Image"]
    container["Image"] = ids.get(old_id, old_id)
    labels = config.get("Labels") or {}
    if labels.get("com.docker.compose.image") in ids:
        labels["com.docker.compose.image"] = ids[labels["com.docker.compose.image"]]
    container["ImageManifestDescriptor"] = {
        "mediaType": _MANIFEST,
        "digest": digest_of("manifest:" + old_id),
        "size": 1234,
        "platform": dict(_PLATFORM),
    }
    container.pop("GraphDriver", None)
    container["Storage"] = {"RootFS": {"Snapshot": {"Name": "overlayfs"}}}


def _image_152(image: dict[str, Any], *, synthesize: bool) -> dict[str, Any]:
    """Image inspect at 1.52 on the containerd store, from the 1.45 shape.

    ``synthesize``: the image is tagged, so every tag gets a ``name@<ID>`` RepoDigest.
    """
    out = copy.deepcopy(image)
    out["Id"] = index_digest(image)
    out["Descriptor"] = {"mediaType": _INDEX, "digest": out["Id"], "size": 856}
    repos = {tag.rpartition(":")[0] for tag in out.get("RepoTags") or []}
    pulled = [ref.partition("@")[0] for ref in out.get("RepoDigests") or []]
    if synthesize:
        out["RepoDigests"] = sorted({f"{repo}@{out['Id']}" for repo in [*repos, *pulled]})
    else:
        out["RepoDigests"], out["RepoTags"] = [], []
    out.pop("GraphDriver", None)
    for key in _IMAGE_OMITTED_EMPTY_152:
        if not out.get(key):
            out.pop(key, None)
    config = out["Config"]
    for key in _IMAGE_CONFIG_GONE_150:
        config.pop(key, None)
    for key in _IMAGE_CONFIG_OMITTED_EMPTY_152:
        if not config.get(key):
            config.pop(key, None)
    return out


def to_api_154(record: dict[str, Any]) -> dict[str, Any]:
    """Docker 29.3 on the containerd image store: ``Identity`` on image inspect."""
    out = to_api_152(record)
    out.update(api_version="1.54", engine_version="29.3.0 (derived from 26.1.5)")
    build = {"Build": [{"Ref": "k4mhvb0pkyn0n9xbrn0iq1ka6", "CreatedAt": _created(out)}]}
    pull = {"Pull": [{"Repository": REGISTRY_REPO}]}
    out["old_image"]["Identity"] = copy.deepcopy(build)  # record_inspect.py builds them
    out["new_image"]["Identity"] = copy.deepcopy(build)
    origins = out["image_origins"]
    origins["built"]["Identity"] = copy.deepcopy(build)
    origins["pulled"]["Identity"] = copy.deepcopy(pull)
    origins["dangling"]["Identity"] = copy.deepcopy(pull)  # content labels outlive the tag
    out["version"] = _version("29.3.0", "1.54", "1.44")
    return out


def _created(record: dict[str, Any]) -> str:
    return str(record["old_image"].get("Created") or "2026-01-01T00:00:00Z")


def _version(engine: str, newest: str, oldest: str) -> dict[str, Any]:
    """``GET /version`` of such an engine (swagger ``SystemVersion``)."""
    return {
        "Platform": {"Name": "Docker Engine - Community"},
        "Version": engine,
        "ApiVersion": newest,
        "MinAPIVersion": oldest,
        "Os": "linux",
        "Arch": "amd64",
        "GoVersion": "go1.24.9",
        "GitCommit": "0000000",
        "KernelVersion": "6.12.0",
        "BuildTime": "2026-01-01T00:00:00.000000000+00:00",
    }


def main() -> None:
    """Write ``inspect-api1.48.json``, ``-api1.52.json`` and ``-api1.54.json``."""
    source = json.loads(SOURCE.read_text())
    for derive in (to_api_148, to_api_152, to_api_154):
        record = derive(source)
        out = HERE / f"inspect-api{record['api_version']}.json"
        out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
