"""The node's REST API (spec §6): FastAPI routes that relay client-signed envelopes.

``create_app`` builds the application for a node's :class:`~dms.network.Network`;
``serve_api`` runs it with hypercorn's trio worker in the caller's nursery::

    app = create_app(network, node_handle)
    port = await nursery.start(serve_api, app, "127.0.0.1", 9999)
"""

from dms.api._app import RESERVED_INBOXES, create_app
from dms.api._body import MAX_BODY_SIZE
from dms.api._server import serve_api

__all__ = ["MAX_BODY_SIZE", "RESERVED_INBOXES", "create_app", "serve_api"]
