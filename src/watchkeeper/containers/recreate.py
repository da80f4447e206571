"""Pure: the create request of a replacement container, from the inspect of the old one.

``docker inspect`` shows the *merged* configuration: the user's settings plus the defaults of
the image the container was created from. Sending that back as is would freeze the old
image's defaults (its env, cmd, labels, healthcheck...) into the replacement, so the new image's
defaults would never apply. :func:`build_create_spec` keeps the user's part only, by dropping
every value equal to the old image's, and lets the engine merge the new image's defaults in.
It also rewrites what names the old container (short-ID aliases and hostname, links and
``container:`` network, PID and IPC modes by ID) and carries anonymous volumes over by name, so
their data stays.

The body names the image as the user did (``Config.Image``: the engine stores the reference it
is given, so creating from an image ID would turn the user's tag into a bare ID for good).
The tag may name another image by the time the replacement is created (pulled by hand, a
rolled-back update): :func:`unplanned_image` tells whether the created container got the
image that was planned, :attr:`CreateSpec.image_id`.

No I/O here: inputs are inspect dicts, so the rules are unit-tested against recorded JSON.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.containers.order import NAMESPACE_MODES

# Bookkeeping labels an older watchkeeper put on replacements; never carried over.
SWAP_LABEL_PREFIX = "watchkeeper.swap."
COMPOSE_IMAGE_LABEL = "com.docker.compose.image"

# Fields of POST /containers/create that come from ``Config`` of an inspect.
_CONFIG_FIELDS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "Image",
    "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild",
    "Labels", "StopSignal", "StopTimeout", "Shell",
)  # fmt: skip
# Image fields the engine copies into a container unless the user set them.
_IMAGE_DEFAULT_FIELDS = ("WorkingDir", "User", "StopSignal", "Shell", "OnBuild")
_HEALTHCHECK_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")
_ENDPOINT_FIELDS = ("IPAMConfig", "Links", "DriverOpts")
_ANONYMOUS_VOLUME = re.compile(r"^[0-9a-f]{64}$")
# From this API version every endpoint (and its MacAddress) can be given at create.
_ENDPOINTS_AT_CREATE = (1, 44)
# ``Config.MacAddress`` holds only a MAC the user gave: Engine 26.1 leaves it empty for
# generated MACs, also after a daemon restart, and keeps the user's while the container is
# stopped (its endpoint then shows no MAC); Docker 28 and 29 fill it with the configured MAC
# of the ``NetworkMode`` network, until API 1.51 (from 1.52 it is gone, in inspect and at
# create). From API 1.48 (Docker 28) every endpoint without a configured MAC gets a random
# one, so an endpoint's MAC is no proof the user set it: only ``Config.MacAddress`` is
# (README, "Engines and API versions").
_RANDOM_MACS_FROM = (1, 48)


@dataclass(frozen=True)
class CreateSpec:
    """What the engine needs to create the replacement.

    ``body`` is the raw JSON of ``POST /containers/create`` (Config fields, ``HostConfig``,
    ``NetworkingConfig``); ``image_id`` is the image the replacement was planned on (the
    body's ``Image`` is the user's reference, which must still name it); ``extra_networks``
    maps each network the engine cannot take at create (API < 1.44: only one endpoint) to the
    endpoint config to connect with before start.
    """

    name: str
    body: dict[str, Any]
    image_id: str
    extra_networks: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_create_spec(
    container: dict[str, Any],
    old_image: dict[str, Any],
    new_image: dict[str, Any],
    *,
    api_version: str,
    names_by_id: dict[str, str],
    image_ref: str | None = None,
) -> CreateSpec:
    """The create request that recreates ``container`` on ``new_image`` with the user's settings.

    ``old_image`` is the inspect of the image the container runs (``container["Image"]``),
    ``new_image`` the one planned for the replacement (the same one for a dependent that only
    follows its parent); ``names_by_id`` maps container IDs to names (from the run's snapshot)
    so that ``container:<id>`` network, PID and IPC modes can point at the parent's name.
    ``image_ref`` replaces the container's ``Config.Image`` when a tag policy moves it to
    another tag (``app:1.2.3`` -> ``app:1.2.4``); everything else stays. Raises nothing.
    """
    api = parse_api_version(api_version)
    endpoints_at_create = api >= _ENDPOINTS_AT_CREATE
    mode = str((container.get("HostConfig") or {}).get("NetworkMode") or "default")
    endpoints = _endpoints(
        container,
        mode,
        with_mac=endpoints_at_create,
        random_macs=api >= _RANDOM_MACS_FROM,
    )
    body = _user_config(container, old_image.get("Config") or {}, mode)
    if image_ref is not None:
        body["Image"] = image_ref
    body["Labels"] = _labels(container, old_image, new_image)
    body["HostConfig"] = _host_config(container, mode, names_by_id)
    primary = _primary_network(container, mode)
    extra: dict[str, dict[str, Any]] = {}
    if primary is not None:
        extra = {net: ep for net, ep in endpoints.items() if net != primary}
        at_create = {mode: endpoints.get(primary, {})}
        if endpoints_at_create:
            at_create.update(extra)
            extra = {}
        else:
            body["MacAddress"] = _legacy_mac(container, primary)
        body["NetworkingConfig"] = {"EndpointsConfig": at_create}
    return CreateSpec(
        name=_strip_slash(container["Name"]),
        body=_drop_none(body),
        image_id=str(new_image["Id"]),
        extra_networks=extra,
    )


def unplanned_image(spec: CreateSpec, created_image_id: str) -> str | None:
    """Why a container created from ``spec`` on ``created_image_id`` must not be used, or None.

    The engine resolves the user's reference at create time: when it names another image
    than the planned one, the replacement would silently move to an image nobody planned (a
    dependent that only follows its parent, onto a rolled-back or monitor-only image). Creating
    from the ID instead would change the user's reference for good, so the swap is refused
    before anything is stopped, with what the user can do. Raises nothing.
    """
    if created_image_id == spec.image_id:
        return None
    reference = spec.body.get("Image")
    return (
        f"{spec.name}: {reference} now names image {_short_image(created_image_id)}, not "
        f"{_short_image(spec.image_id)} it was to be recreated on; not moved to an image "
        f"nobody planned (tag {_short_image(spec.image_id)} as {reference} again, or update "
        f"{spec.name} on its own first)"
    )


def _short_image(image_id: str) -> str:
    """``sha256:0123456789ab…`` -> ``0123456789ab``, as ``docker images`` shows it."""
    return image_id.removeprefix("sha256:")[:12]


def parse_api_version(api_version: str) -> tuple[int, ...]:
    """``"1.41"`` -> ``(1, 41)``, comparable with tuples; unparsable parts count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in api_version.split("."))


def _strip_slash(name: str) -> str:
    """Inspect names start with ``/``; the API takes them without."""
    return name[1:] if name.startswith("/") else name


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    """Leave out unset fields, so the engine applies the new image's default."""
    return {key: value for key, value in body.items() if value is not None}


def _short_id(container: dict[str, Any]) -> str:
    """The 12-character ID the engine uses as default hostname and alias."""
    return str(container["Id"])[:12]


def _user_config(container: dict[str, Any], image: dict[str, Any], mode: str) -> dict[str, Any]:
    """The container's Config minus what it inherited from the old image."""
    config = copy.deepcopy(container.get("Config") or {})
    body: dict[str, Any] = {key: config.get(key) for key in _CONFIG_FIELDS}
    old_env = set(image.get("Env") or [])
    body["Env"] = [entry for entry in config.get("Env") or [] if entry not in old_env] or None
    body["ExposedPorts"] = _exposed_ports(container, image)
    old_volumes = image.get("Volumes") or {}
    volumes: dict[str, Any] = {
        path: {} for path in config.get("Volumes") or {} if path not in old_volumes
    }
    body["Volumes"] = volumes or None
    body.update(_command(config, image))
    for key in _IMAGE_DEFAULT_FIELDS:
        if (config.get(key) or None) == (image.get(key) or None):
            body[key] = None
    body["Healthcheck"] = _healthcheck(config.get("Healthcheck"), image.get("Healthcheck"))
    body["Hostname"] = _hostname(container, mode)
    body["Domainname"] = config.get("Domainname") or None
    body["MacAddress"] = None  # set by the network rules, depending on the API version
    body["ArgsEscaped"] = None  # Windows-only, derived by the engine from the image
    return body


def _exposed_ports(container: dict[str, Any], image: dict[str, Any]) -> dict[str, Any] | None:
    """Ports the user exposed (not the old image's), plus every published port."""
    old_ports = image.get("ExposedPorts") or {}
    ports: dict[str, Any] = {
        port: {}
        for port in (container.get("Config") or {}).get("ExposedPorts") or {}
        if port not in old_ports
    }
    for port in (container.get("HostConfig") or {}).get("PortBindings") or {}:
        ports[port] = {}
    return ports or None


def _command(config: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """Entrypoint and Cmd the user gave; the image's are left for the new image to fill.

    Cmd is only compared when the entrypoint is the image's: with an entrypoint override
    the engine does not use the image's Cmd at all, so the user's Cmd is kept as is.
    """
    entrypoint, cmd = config.get("Entrypoint"), config.get("Cmd")
    if (entrypoint or None) != (image.get("Entrypoint") or None):
        # An empty entrypoint over an image that had one is a user reset: ``[]`` keeps it
        # empty, while a missing field would bring the new image's entrypoint back.
        return {"Entrypoint": entrypoint or [], "Cmd": cmd}
    if entrypoint and not cmd and image.get("Cmd"):
        # No Cmd where the image has one: only an ``--entrypoint`` (here equal to the image's)
        # keeps the engine from filling it in, so it is sent again; left out, the image's
        # Cmd would come back.
        return {"Entrypoint": entrypoint, "Cmd": None}
    if (cmd or None) == (image.get("Cmd") or None):
        cmd = None
    return {"Entrypoint": None, "Cmd": cmd}


def _healthcheck(
    container_check: dict[str, Any] | None, image_check: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The healthcheck fields the user set (the engine fills the others from the image)."""
    mine, theirs = container_check or {}, image_check or {}
    kept = {
        key: mine[key]
        for key in _HEALTHCHECK_FIELDS
        if mine.get(key) and mine.get(key) != theirs.get(key)
    }
    return kept or None


def _hostname(container: dict[str, Any], mode: str) -> str | None:
    """The user's hostname: not the engine's default (short ID), none in ``container:`` mode.

    With ``--uts host`` the engine fills in the host's name and refuses any hostname at
    create ("conflicting options: hostname and the UTS mode"): none can be the user's.
    """
    hostname = (container.get("Config") or {}).get("Hostname") or None
    uts_mode = (container.get("HostConfig") or {}).get("UTSMode") or ""
    if mode.startswith("container:") or uts_mode == "host" or hostname == _short_id(container):
        return None
    return hostname


def _labels(
    container: dict[str, Any], old_image: dict[str, Any], new_image: dict[str, Any]
) -> dict[str, str]:
    """The container's labels minus the old image's: the user's own labels, nothing added.

    ``com.docker.compose.image`` must name the new image, or the next ``docker compose up``
    sees a drift and recreates the container once more. The swap keeps its bookkeeping in
    container names, so no label outlives it; ``watchkeeper.swap.*`` labels an older
    watchkeeper left are dropped.
    """
    old_labels = (old_image.get("Config") or {}).get("Labels") or {}
    labels = {
        key: value
        for key, value in ((container.get("Config") or {}).get("Labels") or {}).items()
        if old_labels.get(key) != value and not key.startswith(SWAP_LABEL_PREFIX)
    }
    if COMPOSE_IMAGE_LABEL in labels:
        labels[COMPOSE_IMAGE_LABEL] = str(new_image["Id"])
    return labels


def _host_config(
    container: dict[str, Any], mode: str, names_by_id: dict[str, str]
) -> dict[str, Any]:
    """HostConfig as is, with links and ``container:`` pointing at names, anon volumes kept.

    The engine shows ``container:`` network, PID and IPC modes by the parent's ID; once the
    parent is recreated that ID is gone, its name is not.
    """
    host_config = copy.deepcopy(container.get("HostConfig") or {})
    if host_config.get("Links"):
        host_config["Links"] = [_rewrite_link(link) for link in host_config["Links"]]
    for field_name in NAMESPACE_MODES:
        namespace = str(host_config.get(field_name) or "")
        if namespace.startswith("container:"):
            parent = _name_of(namespace.removeprefix("container:"), names_by_id)
            host_config[field_name] = "container:" + parent
    mounts = _mounts_with_anonymous_volumes(container, host_config)
    if mounts:
        host_config["Mounts"] = mounts
    return host_config


def _rewrite_link(link: str) -> str:
    """``/db:/app/alias`` (inspect form) -> ``db:alias`` (create form)."""
    source, _, target = link.partition(":")
    alias = target.rpartition("/")[2] or _strip_slash(source)
    return f"{_strip_slash(source)}:{alias}"


def _name_of(container_id: str, names_by_id: dict[str, str]) -> str:
    """The name of a container known by (a prefix of) its ID, else the ID itself."""
    for known_id, name in names_by_id.items():
        if known_id == container_id or known_id.startswith(container_id):
            return _strip_slash(name)
    return container_id


def _mounts_with_anonymous_volumes(
    container: dict[str, Any], host_config: dict[str, Any]
) -> list[dict[str, Any]]:
    """HostConfig.Mounts plus one ``volume`` mount per anonymous volume of the old container.

    Without them the engine would create fresh empty volumes for the image's VOLUMEs (and
    the user's ``-v /path``): naming the old ones carries the data over, as compose does.
    A read-only one that is no ``--mount`` of the container's own was reached through
    ``--volumes-from x:ro`` (the engine makes a container's own anonymous volumes writable):
    ``VolumesFrom`` brings it back read-only, a mount of it would make it writable.
    """
    mounts: list[dict[str, Any]] = list(host_config.get("Mounts") or [])
    named = {mount.get("Source") for mount in mounts}
    taken = {_bind_destination(bind) for bind in host_config.get("Binds") or []}
    for bind in host_config.get("Binds") or []:
        named.add(bind.partition(":")[0])
    for mount in container.get("Mounts") or []:
        name, target = mount.get("Name") or "", mount.get("Destination") or ""
        if mount.get("Type") != "volume" or not _ANONYMOUS_VOLUME.match(name) or name in named:
            continue
        if target in taken:
            continue
        unnamed = [m for m in mounts if m.get("Target") == target and not m.get("Source")]
        read_only = mount.get("RW") is False
        if unnamed:
            unnamed[0]["Source"] = name  # a --mount without source: name the volume it got
        elif read_only and host_config.get("VolumesFrom"):
            continue
        elif not any(m.get("Target") == target for m in mounts):
            mounts.append(_volume_mount(name, target, read_only=read_only))
    return mounts


def _volume_mount(name: str, target: str, *, read_only: bool) -> dict[str, Any]:
    """A ``Mounts`` entry for the named volume at ``target``."""
    mount: dict[str, Any] = {"Type": "volume", "Source": name, "Target": target}
    if read_only:
        mount["ReadOnly"] = True
    return mount


def _bind_destination(bind: str) -> str:
    """The container path of a ``src:dst[:mode]`` bind (or of a lone ``dst``)."""
    parts = bind.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _primary_network(container: dict[str, Any], mode: str) -> str | None:
    """The name of the network ``NetworkMode`` names; None for host/none/container modes."""
    if mode in ("host", "none") or mode.startswith("container:"):
        return None
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    if mode == "default":
        return "bridge"
    for name, endpoint in networks.items():
        if name == mode or str((endpoint or {}).get("NetworkID") or "").startswith(mode):
            return str(name)
    return mode


def _endpoints(
    container: dict[str, Any], mode: str, *, with_mac: bool, random_macs: bool
) -> dict[str, dict[str, Any]]:
    """Per network, the endpoint settings the user chose (no IDs, no engine-made values)."""
    if mode in ("host", "none") or mode.startswith("container:"):
        return {}
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    short_id = _short_id(container)
    endpoints = {}
    for name, settings in networks.items():
        settings = settings or {}
        endpoint = {key: settings[key] for key in _ENDPOINT_FIELDS if settings.get(key)}
        aliases = [alias for alias in settings.get("Aliases") or [] if alias != short_id]
        if aliases:
            endpoint["Aliases"] = aliases
        mac = None
        if with_mac:
            mac = _endpoint_mac(container, name, settings, mode, random_macs=random_macs)
        if mac:
            endpoint["MacAddress"] = mac
        endpoints[str(name)] = endpoint
    return endpoints


def _endpoint_mac(
    container: dict[str, Any],
    network: str,
    settings: dict[str, Any],
    mode: str,
    *,
    random_macs: bool,
) -> str | None:
    """The user-set MAC of one endpoint (API >= 1.44), None for an engine-generated one.

    Engines that report ``DesiredMacAddress`` tell it apart. The deprecated
    ``Config.MacAddress`` belongs to the ``NetworkMode`` network and holds only the user's
    MAC, even in ``02:42:`` form and on a stopped container, whose endpoint shows no MAC and no
    IP to compare with. Where the engine makes random MACs (``random_macs``) it is the only
    proof: no other endpoint MAC is carried, and none at all from API 1.52, where it is gone.
    Before, a MAC that is ``02:42:`` plus the endpoint's IPv4 bytes is the engine's own.
    """
    if "DesiredMacAddress" in settings:
        return settings.get("DesiredMacAddress") or None
    mac = settings.get("MacAddress") or None
    config_mac = None
    if network == _primary_network(container, mode):
        config_mac = (container.get("Config") or {}).get("MacAddress") or None
    if random_macs:
        return str(config_mac) if config_mac else None
    if config_mac and mac in (None, config_mac):
        return str(config_mac)
    return _user_mac(mac or config_mac, settings.get("IPAddress") or "")


def _legacy_mac(container: dict[str, Any], primary: str) -> str | None:
    """``Config.MacAddress`` when the user set it (API < 1.44 only takes it there).

    Engines of these API versions write only the user's MAC there, so without an IP to
    compare with (a stopped container) it is trusted.
    """
    mac = (container.get("Config") or {}).get("MacAddress") or None
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    ip = ((networks.get(primary) or {}).get("IPAddress")) or ""
    return _user_mac(mac, ip, trust_without_ip=True)


def _user_mac(mac: str | None, ip: str, *, trust_without_ip: bool = False) -> str | None:
    """``mac`` unless the engine generated it: ``02:42:`` + the IPv4 bytes of the endpoint.

    Without a known IP (a stopped container) a ``02:42:`` MAC counts as generated unless
    ``trust_without_ip``: engines 25+ also report generated MACs as configured ones.
    """
    if not mac:
        return None
    if not mac.lower().startswith("02:42:"):
        return mac
    try:
        packed = ipaddress.IPv4Address(ip).packed
    except ValueError:
        return mac if trust_without_ip else None
    generated = "02:42:" + ":".join(f"{byte:02x}" for byte in packed)
    return None if mac.lower() == generated else mac
