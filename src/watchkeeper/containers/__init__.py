"""The Docker adapter: engine calls, the replacement's create spec, and the safe swap.

``engine`` is the only place docker-py is used (errors translated, timeouts everywhere),
``recreate`` turns an inspect into the replacement's create request without I/O, and ``swap``
replaces one container with rollback and finds the containers that depend on it.
"""

from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.containers.recreate import (
    PREVIOUS_ID_LABEL,
    PREVIOUS_IMAGE_LABEL,
    CreateSpec,
    build_create_spec,
)
from watchkeeper.containers.swap import (
    ASIDE_MARKER,
    SwapFailedError,
    aside_name,
    find_dependents,
    swap_container,
)

__all__ = [
    "ASIDE_MARKER",
    "PREVIOUS_ID_LABEL",
    "PREVIOUS_IMAGE_LABEL",
    "CreateSpec",
    "Engine",
    "NotFoundError",
    "SwapFailedError",
    "aside_name",
    "build_create_spec",
    "find_dependents",
    "swap_container",
]
