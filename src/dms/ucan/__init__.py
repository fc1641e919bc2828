"""Capability tokens (UCAN-like, as the Go DMS uses them), chain verification, capability contexts.

The public surface: token models and their exact Go JSON (:class:`DMSToken`, :class:`Token`,
:class:`TokenList`, :func:`parse_token_list`, :func:`parse_tokens`), chain verification and
predicates (:func:`verify_token` and the ``allow_*`` functions), :class:`CapabilityContext` with
its trust anchors, and ``.cap`` file persistence (:func:`new_context`, :func:`load_context`,
:func:`save_context`).
"""

from dms.ucan._capability import ROOT, Capability, capabilities, capability, implies
from dms.ucan._chain import (
    RevocationSet,
    allow_action,
    allow_broadcast,
    allow_delegation,
    allow_invocation,
    subsumes,
    verify_depth,
    verify_token,
)
from dms.ucan._context import CapabilityContext, ContextView, SelfSign
from dms.ucan._parse import TokenJSONError, parse_token, parse_token_list, parse_tokens
from dms.ucan._store import cap_path, load_context, new_context, reload_context, save_context
from dms.ucan._token import (
    MAX_CAPABILITY_SIZE,
    SIGNATURE_PREFIX,
    Action,
    DMSToken,
    Token,
    TokenList,
    new_token,
)

__all__ = [
    "MAX_CAPABILITY_SIZE",
    "ROOT",
    "SIGNATURE_PREFIX",
    "Action",
    "Capability",
    "CapabilityContext",
    "ContextView",
    "DMSToken",
    "RevocationSet",
    "SelfSign",
    "Token",
    "TokenJSONError",
    "TokenList",
    "allow_action",
    "allow_broadcast",
    "allow_delegation",
    "allow_invocation",
    "cap_path",
    "capabilities",
    "capability",
    "implies",
    "load_context",
    "new_context",
    "new_token",
    "parse_token",
    "parse_token_list",
    "parse_tokens",
    "reload_context",
    "save_context",
    "subsumes",
    "verify_depth",
    "verify_token",
]
