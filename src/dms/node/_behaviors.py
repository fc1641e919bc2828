"""Installs every behaviour group on the node actor.

One module per group (``_public``, ``_peers``, later onboarding, deployments, ...) so each Go
``behaviors_*.go`` file has one counterpart; this is the single place that lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dms.node._deployment import install_deployment
from dms.node._deployment_control import install_deployment_control
from dms.node._edge import install_edge
from dms.node._onboarding import install_onboarding
from dms.node._peers import install_peers
from dms.node._public import install_public
from dms.node._vm import install_vm

if TYPE_CHECKING:
    from dms.node._node import Node


def install_behaviors(node: Node) -> None:
    """Register the node's behaviours (each group module adds its own)."""
    install_public(node)
    install_peers(node)
    install_onboarding(node)
    install_deployment(node)
    install_deployment_control(node, node.deployments)
    install_edge(node)
    install_vm(node)
