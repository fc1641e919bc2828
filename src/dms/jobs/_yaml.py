"""Reading ensemble YAML into plain values, remembering the line of every path.

Why not ``yaml.safe_load``: it silently keeps the last of two equal mapping keys (a second
``alloc1:`` would replace the first without a word), forgets where each value came from (so an
error could not name its line), and expands aliases without bound. Here the document is
composed with PyYAML's safe machinery and then converted by hand:

* every mapping key and sequence item records its line under its path
  (``allocations.web.resources.ram.size``, ``nodes.n1.ports[0]``);
* a duplicate key is a :class:`~dms.jobs._problems.Problem` (reported with the others; the
  first value is kept);
* ``<<`` merge keys work as YAML 1.1 defines them (explicit keys win);
* ``yes``/``no``/``on``/``off`` stay strings, as in YAML 1.2 and Go's ``yaml.v3``, so a country
  code ``NO`` is Norway, not ``False``;
* caps: the text size, the nesting depth and the number of values after alias expansion
  (a "billion laughs" document stops at the cap instead of exhausting memory); a recursive
  alias is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dms.jobs._problems import EnsembleInvalid, Problem

#: An ensemble is a page of YAML; anything this large is a mistake or an attack.
MAX_YAML_BYTES = 1 << 20
#: Deeper nesting than this is never an ensemble (the real ones are < 10 deep).
MAX_DEPTH = 64
#: Values after alias expansion; a 1 MiB document of plain values has far fewer.
MAX_VALUES = 200_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class _TooDeep(Exception):
    pass


class _Resolver(yaml.resolver.Resolver):
    """PyYAML's resolver with YAML 1.2 booleans (only true/false in their three spellings)."""


_Resolver.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for key, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


try:  # libyaml's parser (C) when PyYAML was built with it: 10x faster than the Python one
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML without libyaml

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _Loader(Composer, _Parser, yaml.constructor.SafeConstructor, _Resolver):
    """A safe loader: parser events (C or Python) composed by PyYAML's Python composer, which
    refuses documents nested deeper than :data:`MAX_DEPTH` (the C composer would recurse
    without a bound)."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self._depth = 0
        self.anchored: set[int] = set()

    def compose_document(self) -> Node:
        """PyYAML's, but remembering which nodes carried an ``&anchor``."""
        self.get_event()  # DocumentStart
        node: Node = self.compose_node(None, None)
        self.get_event()  # DocumentEnd
        self.anchored = {id(n) for n in self.anchors.values()}
        self.anchors = {}
        return node

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep
            node: Node = super().compose_node(parent, index)  # type: ignore[assignment]
            return node
        finally:
            self._depth -= 1


@dataclass
class Document:
    """A YAML document as plain values, with the line of each path and what went wrong."""

    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: top-level keys whose value carries an anchor (``x: &name ...``): alias holders
    anchored: set[str] = field(default_factory=set)

    def line(self, path: str) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = parent_path(path)


def parent_path(path: str) -> str:
    """``a.b[2]`` → ``a.b``; ``a.b`` → ``a``; ``a`` → ``""``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _syntax_problem(exc: yaml.YAMLError, text: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    # libyaml marks "end of input" one line past a last line without a newline.
    line = min(mark.line + 1, text.count("\n") + 1) if mark is not None else None
    problem = getattr(exc, "problem", None) or "cannot parse"
    if isinstance(exc, yaml.reader.ReaderError):
        problem = f"unacceptable character #x{exc.character:04x} at position {exc.position}"
    return Problem("", line, f"invalid YAML: {problem}")


def compose(text: str) -> tuple[Node | None, set[int]]:
    """The node tree of ``text`` and the ids of its anchored nodes; raises
    :class:`EnsembleInvalid` with one problem when it cannot be read."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise EnsembleInvalid(
            [Problem("", None, f"the YAML is larger than {MAX_YAML_BYTES} bytes")]
        )
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise EnsembleInvalid([_syntax_problem(exc, text)]) from None
    try:
        node: Node | None = loader.get_single_node()
    except _TooDeep:
        raise EnsembleInvalid([Problem("", None, "invalid YAML: nested too deeply")]) from None
    except RecursionError:
        raise EnsembleInvalid([Problem("", None, "invalid YAML: nested too deeply")]) from None
    except yaml.YAMLError as exc:
        raise EnsembleInvalid([_syntax_problem(exc, text)]) from None
    finally:
        loader.dispose()
    return node, loader.anchored


class _Converter:
    def __init__(self, doc: Document, anchored: set[int]) -> None:
        self.doc = doc
        self.anchored = anchored
        self.count = 0
        self.active: set[int] = set()
        self.scalars = _Loader("")

    def problem(self, path: str, node: Node, message: str) -> None:
        self.doc.problems.append(Problem(path, node.start_mark.line + 1, message))

    def convert(self, node: Node, path: str) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise EnsembleInvalid(
                [
                    Problem(
                        path,
                        node.start_mark.line + 1,
                        f"more than {MAX_VALUES} values (aliases expanded); refusing the document",
                    )
                ]
            )
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.problem(path, node, "recursive alias: a value cannot contain itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self.sequence(node, path)
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.problem(path, node, "unsupported YAML node")
        return None

    def scalar(self, node: ScalarNode, path: str) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "cannot read this value"
            self.problem(path, node, f"invalid value: {problem}")
            return None

    def sequence(self, node: SequenceNode, path: str) -> list[Any]:
        out = []
        for i, item in enumerate(node.value):
            item_path = f"{path}[{i}]"
            self.doc.lines.setdefault(item_path, item.start_mark.line + 1)
            out.append(self.convert(item, item_path))
        return out

    def _key(self, key_node: Node, path: str) -> str | None:
        if not isinstance(key_node, ScalarNode):
            self.problem(path, key_node, "a mapping key must be a plain name, not a list or map")
            return None
        return str(key_node.value)

    def _merged(self, value: Node, path: str) -> list[tuple[Node, Node]]:
        """The key/value pairs a ``<<`` merge brings in (earlier sources win)."""
        sources = value.value if isinstance(value, SequenceNode) else [value]
        pairs: list[tuple[Node, Node]] = []
        for source in sources:
            if id(source) in self.active:
                self.problem(path, source, "recursive alias: a value cannot contain itself")
                continue
            if not isinstance(source, MappingNode):
                self.problem(path, source, "'<<' merges a mapping (or a list of mappings)")
                continue
            for k, v in source.value:
                if k.tag == _MERGE_TAG:
                    self.active.add(id(source))
                    try:
                        pairs.extend(self._merged(v, path))
                    finally:
                        self.active.discard(id(source))
                else:
                    pairs.append((k, v))
        return pairs

    def mapping(self, node: MappingNode, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merged(value_node, path))
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            key_path = child_path(path, key)
            if key in out:
                first = self.doc.lines.get(key_path)
                where = f" (first at line {first})" if first else ""
                self.problem(key_path, key_node, f"duplicate key {key!r}{where}")
                continue
            self.doc.lines[key_path] = key_node.start_mark.line + 1
            defined_here = value_node.start_mark.index > key_node.start_mark.index
            if not path and id(value_node) in self.anchored and defined_here:
                self.doc.anchored.add(key)
            out[key] = self.convert(value_node, key_path)
        for key_node, value_node in merged:
            key = self._key(key_node, path)
            if key is None or key in out:
                continue
            key_path = child_path(path, key)
            self.doc.lines.setdefault(key_path, key_node.start_mark.line + 1)
            out[key] = self.convert(value_node, key_path)
        return out


def load_document(text: str, *, expect_mapping: bool = True) -> Document:
    """Parse ``text`` into a :class:`Document` (problems collected, not raised).

    Raises :class:`EnsembleInvalid` only when nothing can be read: a syntax error, a size or
    depth cap, or (with ``expect_mapping``) a document that is not a mapping.
    """
    node, anchored = compose(text)
    doc = Document(data=None)
    if node is None:
        if expect_mapping:
            raise EnsembleInvalid([Problem("", None, "the document is empty")])
        return doc
    if expect_mapping and not isinstance(node, MappingNode):
        raise EnsembleInvalid(
            [Problem("", node.start_mark.line + 1, "document: expected a mapping")]
        )
    doc.data = _Converter(doc, anchored).convert(node, "")
    return doc


#: How a caller names the line of a path (``Document.line``, or "no lines" for JSON).
LineOf = Callable[[str], "int | None"]
