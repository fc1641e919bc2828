"""The node actor and its behaviours."""

from dms.node._node import ROOT_INBOX, Node, location_from_config
from dms.node._onboarding import onboard_payload

__all__ = ["ROOT_INBOX", "Node", "location_from_config", "onboard_payload"]
