"""What a restarted DMS does with executions a previous run of it left behind.

Docker containers outlive the process that started them, so after a crash (or a kill -9) the
engine still holds containers labelled with this node's executor ID. The node must not leave
them running unaccounted for: each one is either adopted (an allocation still claims it) or
stopped and removed, and the user can read in the log which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dms.executor._base import Executor
from dms.executor._errors import ExecutorError
from dms.executor._types import ExecutionInfo

log = logging.getLogger(__name__)


async def reclaim_leftovers(
    executor: Executor, claimed: Callable[[ExecutionInfo], bool]
) -> tuple[list[ExecutionInfo], list[ExecutionInfo]]:
    """Adopt the leftovers ``claimed`` accepts and remove the rest; returns (adopted, removed).

    A leftover that cannot be removed is logged and counted as neither: the next start tries
    again (and ``nunet executor cleanup``-style tooling can always remove by label).
    """
    adopted: list[ExecutionInfo] = []
    removed: list[ExecutionInfo] = []
    for info in await executor.recover():
        if claimed(info):
            adopted.append(info)
            continue
        try:
            await executor.cancel(info.execution_id)
            await executor.remove(info.execution_id)
        except ExecutorError as exc:
            log.warning("could not remove leftover execution %s: %s", info.execution_id, exc)
            continue
        removed.append(info)
    if removed:
        log.warning(
            "%s: removed %d execution(s) a previous run left and no allocation claims: %s",
            executor.name,
            len(removed),
            ", ".join(f"{i.execution_id} ({i.status})" for i in removed),
        )
    if adopted:
        log.info(
            "%s: re-adopted %d execution(s) of a previous run: %s",
            executor.name,
            len(adopted),
            ", ".join(i.execution_id for i in adopted),
        )
    return adopted, removed
