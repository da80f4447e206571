"""The registry adapter: which digest is behind an image's tag, asked the cheap way.

``reference`` parses what users type into normalised references, ``auth`` finds the credentials
``docker login`` stored and parses auth challenges, ``digest`` sends one HEAD per image. The rest
of watchkeeper imports from here only.
"""

from watchkeeper.registry.auth import (
    Challenge,
    Credentials,
    CredentialStore,
    parse_www_authenticate,
    to_docker_auth_config,
)
from watchkeeper.registry.digest import MANIFEST_ACCEPT, InsecurePolicy, RegistryClient
from watchkeeper.registry.reference import Reference, is_image_id, parse_reference

__all__ = [
    "MANIFEST_ACCEPT",
    "Challenge",
    "CredentialStore",
    "Credentials",
    "InsecurePolicy",
    "Reference",
    "RegistryClient",
    "is_image_id",
    "parse_reference",
    "parse_www_authenticate",
    "to_docker_auth_config",
]
