"""The node actor and its behaviours."""

from dms.node._node import Node, location_from_config
from dms.node._onboarding import ONBOARD, onboard_payload
from dms.node._vm import custom_vm_start_payload

__all__ = [
    "ONBOARD",
    "Node",
    "custom_vm_start_payload",
    "location_from_config",
    "onboard_payload",
]
