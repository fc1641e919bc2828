"""nunet-dms: NuNet's Device Management Service in Python.

Layers (a module imports only from layers below it; see ../shared/design.md, enforced by
tests/unit/test_layering.py): 0 ``errors``, ``gojson``, ``_files``, ``config``; 1 ``crypto``,
``did``; 2 ``ucan``, ``contexts``; 3 ``network``, ``actor``; 4 ``db``, ``resources``,
``executor``; 5 ``jobs``, ``orchestrator``, ``node``; 6 ``api``, ``client``, ``daemon``,
``devnet``, ``cli``. No module imports another package's ``_private`` module.
"""

__version__ = "0.1.0"
