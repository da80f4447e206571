"""The HTTP API (CONTRACT §7): FastAPI app factory, routes, response schemas, the server.

The daemon builds an :class:`ApiBackend` (how to submit a run, read the status, render the
metrics) and hands it to :func:`create_app`; the API itself holds no state.
"""

from watchkeeper.api.app import ApiServer, create_app
from watchkeeper.api.routes import ApiBackend, DaemonStatus

__all__ = ["ApiBackend", "ApiServer", "DaemonStatus", "create_app"]
