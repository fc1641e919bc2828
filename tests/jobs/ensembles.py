"""Ensemble texts shared by the jobs tests (the two examples of spec §7 and a valid base)."""

from __future__ import annotations

from dms.jobs import EnsembleInvalid, Problem, load_ensemble

DOCKER_HELLO = """\
version: "V1"
allocations:
    alloc1:
        type: task
        executor: docker
        resources:
            cpu:
                cores: 1
            gpus: []
            ram:
                size: 1 # in GiB
            disk:
                size: 1 # in GiB
        execution:
            type: docker
            image: hello-world
        failure_recovery: stay_down
nodes:
    node1:
        allocations:
            - alloc1
        failure_recovery: stay_down
"""

TWO_ALLOCS_ONE_NODE = """\
version: "V1"
nginx_wrapper: &nginx_service
  type: service
  executor: docker
  resources: {cpu: {cores: 1}, gpus: [], ram: {size: 0.5}, disk: {size: 0.5}}
  execution: {type: docker, image: "nginxdemos/hello:plain-text", working_directory: /}
  keys: []
  provision: []
  healthcheck:
    type: command
    exec: ["nginx", "-t"]
    response: {type: string, value: "nginx: the configuration file /etc/nginx/nginx.conf \
syntax is ok"}
allocations:
  nginx1: *nginx_service
  nginx2: *nginx_service
nodes:
  node1:
    allocations: [nginx1, nginx2]
    ports:
      - {private: 80, public: 50001, allocation: nginx1}
      - {private: 80, public: 50002, allocation: nginx2}
subnet:
  join: true
"""

#: Two nodes, every optional feature used once; lines matter to the tests (keep them).
FULL = """\
version: "V1"
allocations:
  db:
    executor: docker
    type: service
    resources: {cpu: {cores: 0.5, clock_speed: 2400MHz}, ram: {size: 512MiB}, disk: {size: 2GB}}
    execution: {type: docker, image: "postgres:16", environment: ["A=1"]}
    keys: [admin]
    provision: [setup]
    healthcheck: {type: command, exec: [pg_isready], interval: 30s}
    failure_recovery: one_for_one
  web:
    executor: docker
    type: service
    resources: {cpu: {cores: 1}, ram: {size: 1}, disk: {size: 1}}
    execution: {type: docker, image: "nginx:1"}
    dns_name: www
    depends_on: [cache]
    healthcheck: {type: http, endpoint: "http://localhost/", response: {type: string, value: ok}}
  cache:
    executor: docker
    type: service
    resources: {cpu: {cores: 1}, ram: {size: 1}, disk: {size: 1}}
    execution: {type: docker, image: "redis:7"}
  job:
    executor: wasm
    type: task
    resources: {cpu: {cores: 1}, ram: {size: 64MiB}, disk: {size: 0.1}}
    execution: {type: wasm, module: "https://example.org/m.wasm"}
nodes:
  n1:
    allocations: [db, job]
    location: {accept: [{continent: EU, country: NO}]}
    peer: 12D3KooWPinned
    failure_recovery: restart
  n2:
    allocations: [web, cache]
    ports:
      - {public: 8080, private: 80, allocation: web}
      - {public: 0, private: 443, allocation: web}
    location: {reject: [{continent: NA}]}
    redundancy: 1
edge_constraints:
  - {edges: [n1, n2], rtt: 50, bw: 1000000}
supervisor:
  strategy: OneForOne
  allocations: [db]
  children: [{strategy: RestForOne, allocations: [web, cache]}]
keys: {admin: "ssh-ed25519 AAAA admin@example"}
scripts: {setup: "#!/bin/sh\\necho ready\\n"}
exclude_peers: [12D3KooWBad]
metadata: {team: infra}
contracts: {c1: {did: "did:key:z6Mk", host: "did:key:z6Mh"}}
escalation_strategy: redeploy
"""


def problems(text: str, **kwargs: object) -> list[Problem]:
    """Every problem ``load_ensemble`` reports for ``text`` ([] if it is valid)."""
    try:
        load_ensemble(text, **kwargs)  # type: ignore[arg-type]
    except EnsembleInvalid as exc:
        return exc.problems
    return []
