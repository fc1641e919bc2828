"""The node actor and its behaviours."""

from dms.node._node import ROOT_INBOX, Node, location_from_config

__all__ = ["ROOT_INBOX", "Node", "location_from_config"]
