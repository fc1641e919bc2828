"""nunet-dms: NuNet's Device Management Service in Python.

Layers (a module imports only from layers below it; see ../shared/design.md):
1 ``crypto``, ``did``; 2 ``ucan``; 3 ``actor``, ``network``; 4 ``resources``, ``executor``,
``db``; 5 ``node``, ``orchestrator``; 6 ``daemon``, ``api``, ``cli``, ``config``.
``errors`` and ``gojson`` sit below all of them.
"""

__version__ = "0.1.0"
