"""Each validation rule names the path and the line, and all problems come at once."""

from __future__ import annotations

import pytest

from dms.jobs import EnsembleInvalid, load_ensemble
from tests.jobs.ensembles import FULL, problems

BODY = """\
    executor: "null"
    type: task
    resources: {cpu: {cores: 1}, ram: {size: 1}}
    execution: {type: "null"}
"""


def two(a1_extra: str = "", a2_extra: str = "", nodes: str = "", top: str = "") -> str:
    """a1 at lines 2-6 (+extra), a2 after it, then ``nodes`` (default: both on n1), ``top``."""
    return (
        "allocations:\n  a1:\n"
        + BODY
        + a1_extra
        + "  a2:\n"
        + BODY
        + a2_extra
        + (nodes or "nodes:\n  n1:\n    allocations: [a1, a2]\n")
        + top
    )


CASES = [
    # (text, path, line, message)
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2, ghost]\n"),
     "nodes.n1.allocations[2]", 14, "unknown allocation 'ghost'"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1]\n"), "allocations.a2", 7, "is on no node"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n  n2:\n    allocations: [a2]\n"),
     "nodes.n2.allocations[0]", 16, "also on node 'n1'"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2, a1]\n"),
     "nodes.n1.allocations[2]", 14, "twice on this node"),
    (two() + "nodes:\n  n2: {allocations: []}\n", "nodes", 15, "duplicate key 'nodes'"),
    (two(a2_extra="  a1:\n" + BODY), "allocations.a1", 12, "duplicate key 'a1' (first at line 2)"),
    (two(a1_extra="    disk: {size: 1}\n"), "allocations.a1.disk", 7, "unknown key 'disk'"),
    (two().replace("ram: {size: 1}}\n    execution", "ram: {size: 1XB}}\n    execution", 1),
     "allocations.a1.resources.ram.size", 5, "invalid size unit 'XB'"),
    (two().replace("clock", "").replace("cores: 1}", "cores: 1, clock_speed: fast}", 1),
     "allocations.a1.resources.cpu.clock_speed", 5, "invalid clock speed"),
    (two(a1_extra="    depends_on: [a2]\n", a2_extra="    depends_on: [a1]\n"),
     "allocations.a1.depends_on", 7, "dependency cycle: a1 -> a2 -> a1"),
    (two(a1_extra="    depends_on: [a9]\n"), "allocations.a1.depends_on[0]", 7,
     "unknown allocation 'a9'"),
    (two(a1_extra="    depends_on: [a1]\n"), "allocations.a1.depends_on[0]", 7,
     "cannot depend on itself"),
    (two().replace('executor: "null"', "executor: lxc", 1)
     .replace('{type: "null"}', "{type: lxc}", 1),
     "allocations.a1.executor", 3, "unknown executor 'lxc'"),
    (two().replace('{type: "null"}', "{type: docker, image: x}", 1),
     "allocations.a1.execution.type", 6, "does not match executor 'null'"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n    ports:\n"
               "      - {public: 8080, private: 80, allocation: a1}\n"
               "      - {public: 8080, private: 81, allocation: a2}\n"),
     "nodes.n1.ports[1].public", 17, "public port 8080 is also ports[0]'s"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n    ports:\n"
               "      - {public: 8080, private: 80, allocation: a1}\n"
               "      - {public: 0, private: 80, allocation: a1}\n"),
     "nodes.n1.ports[1].private", 17, "private port 80 of 'a1' is already published"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1]\n  n2:\n    allocations: [a2]\n"
               "    ports: [{public: 0, private: 80, allocation: a1}]\n"),
     "nodes.n2.ports[0].allocation", 17, "is on node 'n1', not this one"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n"
               "    ports: [{public: 80, private: 80, allocation: a1}]\n"),
     "nodes.n1.ports[0].public", 15, "must be 0 (any free port) or 1025-65535"),
    (two(top="edge_constraints:\n  - {edges: [n1, n9], rtt: 10}\n"),
     "edge_constraints[0].edges", 16, "unknown node 'n9'"),
    (two(top="edge_constraints:\n  - {edges: [n1], rtt: 10}\n"),
     "edge_constraints[0].edges", 16, "exactly two nodes"),
    (two(top="supervisor: {strategy: OneForAll}\n"), "supervisor.strategy", 15,
     "'OneForAll' is not one of OneForOne, AllForOne, RestForOne"),
    (two(top="supervisor:\n  children:\n    - {allocations: [a7]}\n"),
     "supervisor.children[0].allocations[0]", 17, "unknown allocation 'a7'"),
    (two(a1_extra="    failure_recovery: restart\n"), "allocations.a1.failure_recovery", 7,
     "'restart' is not one of stay_down, one_for_one"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n    failure_recovery: one_for_one\n"),
     "nodes.n1.failure_recovery", 15, "'one_for_one' is not one of stay_down, restart, redeploy"),
    (two(a1_extra="    provision: [setup]\n"), "allocations.a1.provision[0]", 7,
     "no script named 'setup'"),
    (two(a1_extra="    keys: [admin]\n", top="keys: {other: x}\n"), "allocations.a1.keys[0]", 7,
     "no key named 'admin'"),
    (two(top="escalation_strategy: retry\n"), "escalation_strategy", 15, "'retry' is not one of"),
    (two(top="subnet: {join: maybe}\n"), "subnet.join", 15, "expected true or false"),
    (two(top="subnet: {jion: true}\n"), "subnet.jion", 15, "unknown key 'jion'"),
    (two(top="typo_key: 1\n"), "typo_key", 15, "unknown key 'typo_key'"),
    (two(top="version: V2\n"), "version", 15, "unsupported version"),
    (two(a1_extra="    type: job\n").replace("    type: task\n", "", 1),
     "allocations.a1.type", 6, "'job' is not one of service, task"),
    (two().replace("    type: task\n", "", 1), "allocations.a1.type", 2, "is required"),
    (two().replace("    resources: {cpu: {cores: 1}, ram: {size: 1}}\n", "", 1),
     "allocations.a1.resources", 2, "is required"),
    (two(a1_extra="    dns_name: a2\n"), "allocations.a2.dns_name", 8,
     "dns_name 'a2' is also used by 'a1'"),
    (two(a1_extra="    dns_name: not_valid!\n"), "allocations.a1.dns_name", 7,
     "not a valid DNS name"),
    (two(a1_extra="    healthcheck: {type: http}\n"), "allocations.a1.healthcheck.endpoint", 7,
     "needs an endpoint"),
    (two(a1_extra="    healthcheck: {type: command, exec: [x], interval: soon}\n"),
     "allocations.a1.healthcheck.interval", 7, "invalid duration 'soon'"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n"
               "    location: {accept: [{country: NO}]}\n"),
     "nodes.n1.location.accept[0].continent", 15, "is required in a location"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n    peer: P1\n",
         top="exclude_peers: [P1]\n"),
     "nodes.n1.peer", 15, "also in exclude_peers"),
    (two(nodes="nodes:\n  n1:\n    allocations: [a1, a2]\n    redundancy: -1\n"),
     "nodes.n1.redundancy", 15, "must be >= 0"),
    (two(top="contracts: {c1: {did: nope}}\n"), "contracts.c1.did", 15, "must be a DID"),
    (two(top="metadata: {team: [a]}\n"), "metadata.team", 15, "expected a string"),
    (two(top="resources: {}\n").replace(
        "resources: {cpu: {cores: 1}, ram: {size: 1}}", "resources: small", 1),
     "allocations.a1.resources.name", 5, "no resources named 'small'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "path", "line", "message"), CASES)
def test_each_rule_names_path_and_line(text: str, path: str, line: int, message: str) -> None:
    found = problems(text)
    matching = [p for p in found if message in p.message]
    assert matching, f"no problem with {message!r} in {[str(p) for p in found]}"
    assert (matching[0].path, matching[0].line) == (path, line), [str(p) for p in found]


def test_all_problems_at_once_one_per_line() -> None:
    text = two(
        a1_extra="    depends_on: [a9]\n    provision: [nope]\n",
        nodes="nodes:\n  n1:\n    allocations: [a1, ghost]\n    redundnacy: 2\n",
        top="supervisor: {strategy: Nope}\n",
    )
    with pytest.raises(EnsembleInvalid) as info:
        load_ensemble(text)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems) >= 6
    assert lines == sorted(lines, key=lambda s: int(s.split("(line ")[1].split(")")[0]))
    joined = "\n".join(lines)
    for expected in (
        "allocations.a1.depends_on[0] (line 7): unknown allocation 'a9'",
        "allocations.a1.provision[0] (line 8): no script named 'nope'",
        "allocations.a2 (line 9): allocation 'a2' is on no node",
        "nodes.n1.allocations[1] (line 16): unknown allocation 'ghost'",
        "nodes.n1.redundnacy (line 17): unknown key 'redundnacy'",
        "supervisor.strategy (line 18): 'Nope' is not one of",
    ):
        assert expected in joined


def test_known_executors_can_be_narrowed() -> None:
    assert problems(FULL) == []
    found = problems(FULL, known_executors={"docker"})
    assert [(p.path, p.message.split(" (")[0]) for p in found] == [
        ("allocations.job.executor", "unknown executor 'wasm'")
    ]


def test_an_anchor_holder_is_not_an_unknown_key_but_a_plain_extra_key_is() -> None:
    text = "base: &b\n" + BODY.replace("    ", "  ") + "allocations:\n  a1: *b\n"
    text += "nodes: {n1: {allocations: [a1]}}\n"
    assert problems(text) == []
    assert problems("x-note: hi\n" + text) == []
    assert [p.path for p in problems("note: hi\n" + text)] == ["note"]


def test_named_resources_are_merged() -> None:
    text = two(top="resources:\n  small: {cpu: {cores: 0.5}, ram: {size: 256MiB}}\n").replace(
        "resources: {cpu: {cores: 1}, ram: {size: 1}}",
        "resources: {name: small, disk: {size: 2}}",
        1,
    )
    e = load_ensemble(text)
    r = e.allocations["a1"].resources
    assert (r.cpu.cores, r.ram.size, r.disk.size) == (0.5, 256 * 1024**2, 2 * 1024**3)


def test_volumes_are_kept_as_data_and_merged_with_top_level_ones() -> None:
    text = two(
        a1_extra="    volumes: ['data:/var/data', {name: logs, mountpoint: /logs}]\n",
        top="volumes:\n  logs: {type: local, src: logvol}\n",
    )
    vols = load_ensemble(text).allocations["a1"].volumes
    assert vols == (
        {"name": "data", "mountpoint": "/var/data"},
        {"type": "local", "src": "logvol", "name": "logs", "mountpoint": "/logs"},
    )


def test_cross_node_dependencies_are_allowed_and_ordered() -> None:
    text = two(
        a1_extra="    depends_on: [a2]\n",
        nodes="nodes:\n  n1:\n    allocations: [a1]\n  n2:\n    allocations: [a2]\n",
    )
    e = load_ensemble(text)
    assert e.start_order() == ["a2", "a1"] and e.start_order("n1") == ["a1"]


def test_a_missing_local_module_is_reported_when_the_base_dir_is_known(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    text = (
        two()
        .replace('{type: "null"}', "{type: wasm, module: gone.wasm}", 1)
        .replace('executor: "null"', "executor: wasm", 1)
    )
    found = problems(text, base_dir=tmp_path)
    assert [(p.path, p.line) for p in found] == [("allocations.a1.execution.module", 6)]
    (tmp_path / "gone.wasm").write_bytes(b"\0asm")
    e = load_ensemble(text, base_dir=tmp_path)
    assert e.allocations["a1"].execution.params["module"] == str(tmp_path / "gone.wasm")
