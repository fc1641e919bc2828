"""The node actor and its behaviours."""

from dms.node._node import Node, location_from_config
from dms.node._onboarding import ONBOARD, onboard_payload

__all__ = ["ONBOARD", "Node", "location_from_config", "onboard_payload"]
