"""Require anchors granted at runtime survive a reload of the .cap file.

A running DMS grants its supervisor (healthcheck) and the orchestrators of its allocations
(allocation behaviours) delegate tokens that it adds as require anchors; they are not in the
.cap file, so the daemon's reload after ``nunet cap anchor`` must not drop them.
"""

from __future__ import annotations

from pathlib import Path

from dms.ucan import load_context, new_context, reload_context, save_context
from tests.ucan.helpers import HOUR, NOW, key, make

ME, ORG, ORCH, ALLOC = key("me"), key("org"), key("orchestrator"), key("allocation")


def clock() -> int:
    return NOW


def test_runtime_require_anchors_survive_a_reload(tmp_path: Path) -> None:
    running = new_context(tmp_path, "dms", ME, clock=clock)
    grant = make(ME, "delegate", ORCH.did, audience=ALLOC.did, caps=["/dms/allocation/start"])
    running.add_require([grant])
    invocation = make(ORCH, "invoke", ORCH.did, audience=ALLOC.did, caps=["/dms/allocation/start"])
    assert running.require(ME.did, ORCH.did, ALLOC.did, ["/dms/allocation/start"], [invocation])

    editor = load_context(tmp_path, "dms", ME, clock=clock)  # `nunet cap anchor --root`
    editor.add_roots([ORG.did])
    save_context(tmp_path, editor)
    reload_context(tmp_path, running)
    view = running.list()
    assert view.roots == (ORG.did,) and view.require.tokens == (grant,)
    assert running.require(ME.did, ORCH.did, ALLOC.did, ["/dms/allocation/start"], [invocation])

    # Removed at runtime (the allocation stopped): gone, and a reload does not bring it back.
    assert running.remove(require=[grant]) == 1
    reload_context(tmp_path, running)
    assert running.list().require.tokens == ()
    assert not running.require(ME.did, ORCH.did, ALLOC.did, ["/dms/allocation/start"], [invocation])


def test_expired_runtime_anchors_are_not_kept(tmp_path: Path) -> None:
    now = [NOW]
    running = new_context(tmp_path, "dms", ME, clock=lambda: now[0])
    grant = make(ME, "delegate", ORCH.did, audience=ALLOC.did, expire=NOW + HOUR)
    running.add_require([grant])
    now[0] = NOW + 2 * HOUR
    reload_context(tmp_path, running)
    assert running.list().require.tokens == ()
