"""``nunet actor``: build, sign and relay actor messages through a running DMS (Go CLI names).

``msg`` builds a signed envelope; ``send`` / ``invoke`` / ``broadcast`` relay one; ``cmd
<behavior>`` does both for a known behaviour, with that behaviour's payload flags. Messages are
signed with an ephemeral actor key and the tokens of the chosen capability context (see
:mod:`dms.client`); the DMS's REST API only relays them.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dms.cli._common import info, passphrase_reader, settings, user_dir
from dms.cli._persistent import MESSAGE_FLAGS, persistent_group
from dms.cli._replies import check_replies, check_reply

if TYPE_CHECKING:
    from dms.actor import Envelope
    from dms.client import RestClient, UserMessage
    from dms.resources import GPUScan

# What a command needs is imported inside it: ``nunet actor --help`` loads no actor layer.
app = typer.Typer(
    cls=persistent_group(MESSAGE_FLAGS),
    no_args_is_help=True,
    help="Send messages to actors through a running DMS (signed with your capability context).",
)
cmd_app = typer.Typer(
    cls=persistent_group(MESSAGE_FLAGS),
    no_args_is_help=True,
    help="Invoke a known behaviour with its flags (see each behaviour's --help).",
)
app.add_typer(cmd_app, name="cmd")

ContextOpt = Annotated[
    str, typer.Option("--context", "-c", help="Capability context that signs (default: user).")
]
DestOpt = Annotated[
    str | None, typer.Option("--dest", "-d", help="Destination DID, peer ID or handle JSON.")
]
TimeoutOpt = Annotated[
    str | None, typer.Option("--timeout", "-t", help="Message lifetime, e.g. 10s (default 30s).")
]
ExpiryOpt = Annotated[
    str | None, typer.Option("--expiry", "-e", help="Message expiry as an ISO date-time.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print raw JSON.")]


def _rest() -> RestClient:
    from dms.client import RestClient

    config = settings()
    host = "127.0.0.1" if config.rest_addr in ("0.0.0.0", "") else config.rest_addr
    host = f"[{host}]" if ":" in host else host
    return RestClient(f"http://{host}:{config.rest_port}")


def _build(
    context: str,
    behavior: str,
    payload: Any,
    *,
    dest: str | None = None,
    topic: str | None = None,
    invocation: bool = False,
    timeout: str | None = None,
    expiry: str | None = None,
    client: RestClient | None = None,
) -> UserMessage:
    from dms.cli._timeparse import parse_duration_ns, parse_expiry_ns
    from dms.client import build_message
    from dms.contexts import open_context

    rest = client or _rest()
    capabilities = open_context(user_dir(), context, passphrase_reader(context))
    return build_message(
        capabilities,
        rest.handle(),
        behavior,
        payload,
        destination=dest,
        topic=topic,
        invocation=invocation,
        timeout_s=parse_duration_ns(timeout) / 1e9 if timeout else None,
        expiry_ns=parse_expiry_ns(expiry) if expiry else None,
    )


def _read_envelope(text: str) -> Envelope:
    from dms.actor import Envelope
    from dms.client import read_at_file

    data = sys.stdin.read() if text == "-" else read_at_file(text)
    return Envelope.from_json(data.strip())


def _show_reply(reply: Envelope, as_json: bool) -> None:
    """Print the reply's payload; one that reports a failure then exits 1 (see ``_replies``)."""
    from dms.cli._render import render

    payload = reply.decode_payload()
    render(payload, as_json=as_json)
    check_reply(payload)


def _show_replies(replies: list[Envelope], as_json: bool) -> None:
    """Print every reply; if any reports a failure, exit 1 after printing them all."""
    payloads = [(reply.from_.address.host, reply.decode_payload()) for reply in replies]
    if as_json or not sys.stdout.isatty():  # one JSON document for scripts and pipes
        typer.echo(json.dumps([payload for _, payload in payloads], indent=2))
    else:
        from dms.cli._render import render

        if not replies:
            typer.echo("no replies before the message expired")
        for host, payload in payloads:
            render(payload, as_json=False, title=f"from {host}")
    check_replies(payloads)


@app.command("msg")
def msg(
    behavior: Annotated[str, typer.Argument(help="Behaviour, e.g. /public/hello.")],
    payload: Annotated[str | None, typer.Argument(help="Payload: JSON, or a plain string.")] = None,
    context: ContextOpt = "user",
    dest: DestOpt = None,
    broadcast: Annotated[
        str | None, typer.Option("--broadcast", "-b", help="Broadcast on this topic.")
    ] = None,
    invoke: Annotated[bool, typer.Option("--invoke", "-i", help="Build an invocation.")] = False,
    timeout: TimeoutOpt = None,
    expiry: ExpiryOpt = None,
) -> None:
    """Build and sign a message; print it as JSON (pipe it to send, invoke or broadcast)."""
    from dms.client import payload_from_text

    message = _build(
        context,
        behavior,
        payload_from_text(payload),
        dest=dest,
        topic=broadcast,
        invocation=invoke,
        timeout=timeout,
        expiry=expiry,
    )
    typer.echo(message.to_json())


EnvelopeArg = Annotated[
    str, typer.Argument(help="Message JSON from `nunet actor msg` (- = stdin).")
]


@app.command("send")
def send(message: EnvelopeArg) -> None:
    """Relay a signed message without waiting for a reply."""
    _rest().send(_read_envelope(message))
    typer.echo("message sent")


@app.command("invoke")
def invoke(message: EnvelopeArg, as_json: JsonOpt = False) -> None:
    """Relay a signed invocation and print the reply's payload."""
    _show_reply(_rest().invoke(_read_envelope(message)), as_json)


@app.command("broadcast")
def broadcast(message: EnvelopeArg, as_json: JsonOpt = False) -> None:
    """Relay a signed broadcast and print every reply collected until it expires."""
    _show_replies(_rest().broadcast(_read_envelope(message)), as_json)


# -- nunet actor cmd <behavior> ---------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One payload flag of a behaviour command; ``key`` is the Go payload field it fills.

    ``short`` may be empty (no short form); ``is_bool`` makes it a switch (``--no-gpu``).
    """

    name: str
    short: str
    key: str
    help: str
    required: bool = True
    is_bool: bool = False

    @property
    def param(self) -> str:
        """The Python parameter name (``no-gpu`` → ``no_gpu``)."""
        return self.name.replace("-", "_")


PayloadBuilder = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class BehaviorCommand:
    """A behaviour the CLI knows: how to build its payload and whether it is a broadcast.

    Without ``payload`` the payload is ``{flag.key: value}``; with it, ``payload`` builds it
    from the flag values (keyed by :attr:`Flag.param`).
    """

    behavior: str
    help: str
    topic: str = ""
    flags: tuple[Flag, ...] = field(default_factory=tuple)
    payload: PayloadBuilder | None = None


def _ask(question: str) -> str:
    return str(typer.prompt(question, default="", show_default=False, err=True))


def scan_gpus() -> GPUScan:
    """The GPUs of this machine (:func:`dms.resources.scan_gpus`, loaded only for onboarding)."""
    from dms.resources import scan_gpus as scan

    return scan()


def onboard_payload(values: dict[str, Any]) -> Any:
    """Go's ``OnboardRequest`` from ``--cpu``, ``--ram``, ``--disk``, ``--gpus``, ``--no-gpu``.

    Built and checked by :func:`dms.node.onboard_payload`, so a typo fails before anything is
    sent (or anyone is asked). With neither ``--gpus`` nor ``--no-gpu`` for the local DMS (no
    ``--dest``), the GPUs detected here are listed and the user is asked which to offer (see
    :mod:`dms.cli._gpu_prompt`; no prompt, and no GPU, without a terminal).
    """
    from dms.cli._gpu_prompt import choose_gpus
    from dms.node import onboard_payload as node_onboard_payload  # the node is heavy to load

    cpu, ram, disk = values["cpu"], values["ram"], values["disk"]
    gpus: str = values.get("gpus") or ""
    no_gpu = bool(values.get("no_gpu"))
    payload = node_onboard_payload(cpu, ram, disk, gpus, no_gpu)
    if not gpus and not no_gpu and values.get("dest") is None:
        chosen = choose_gpus(scan_gpus().gpus, interactive=sys.stdin.isatty(), ask=_ask, tell=info)
        if chosen is not None:
            payload = node_onboard_payload(cpu, ram, disk, chosen, chosen == "")
    return payload


def _number(values: dict[str, Any], name: str, default: float) -> float:
    text = values.get(name)
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        from dms.errors import InvalidInput

        raise InvalidInput(f"--{name} must be a number, not {text!r}") from None


def vm_start_payload(values: dict[str, Any]) -> Any:
    """Go's ``CustomVMStartRequest`` from Go's flags (``--kernel``, ``--rootfs``, ``--initrd``,
    ``--args``, ``--cpu``, ``--memory`` in MiB) and ours (``--command``, ``--*-sha256`` pins for
    URL images); built by :func:`dms.node.custom_vm_start_payload`."""
    from dms.node import custom_vm_start_payload  # the node is heavy to load

    memory = _number(values, "memory", 1024)
    if memory != int(memory):
        from dms.errors import InvalidInput

        raise InvalidInput("--memory is a whole number of MiB")
    return custom_vm_start_payload(
        kernel=values.get("kernel") or "",
        rootfs=values.get("rootfs") or "",
        initrd=values.get("initrd") or "",
        kernel_args=values.get("args") or "",
        cpu=_number(values, "cpu", 1.0),
        memory_mib=int(memory),
        command=values.get("command") or "",
        pins={
            "kernel_image": values.get("kernel_sha256") or "",
            "root_file_system": values.get("rootfs_sha256") or "",
            "initrd_path": values.get("initrd_sha256") or "",
        },
    )


CATALOG: tuple[BehaviorCommand, ...] = (
    BehaviorCommand("/public/hello", "Say hello to an actor; it answers with its DID."),
    BehaviorCommand("/public/status", "Status and machine resources of an actor's node."),
    BehaviorCommand(
        "/broadcast/hello", "Broadcast hello on /nunet/hello; every node answers.", "/nunet/hello"
    ),
    BehaviorCommand("/dms/node/peers/list", "Peers the node is connected to."),
    BehaviorCommand("/dms/node/peers/self", "The node's peer ID and listen addresses."),
    BehaviorCommand(
        "/dms/node/peers/ping",
        "Ping a peer from the node.",
        flags=(Flag("host", "H", "Host", "Peer ID to ping."),),
    ),
    BehaviorCommand(
        "/dms/node/peers/connect",
        "Make the node connect to a peer.",
        flags=(Flag("address", "a", "Address", "Multiaddr ending in /p2p/<peer id>."),),
    ),
    BehaviorCommand("/dms/node/peers/dht", "Peers in the node's DHT routing table."),
    BehaviorCommand("/dms/node/peers/score", "The node's view of its peers' scores."),
    BehaviorCommand(
        "/dms/node/onboarding/onboard",
        "Offer this machine's resources to the network (replaces any previous onboarding).",
        flags=(
            Flag("cpu", "C", "cpu", "CPU cores to offer."),
            Flag("ram", "R", "ram", "RAM to offer: GiB, or with a unit (4GiB, 512MiB)."),
            Flag("disk", "D", "disk", "Disk to offer: GiB, or with a unit."),
            Flag("gpus", "G", "GPUs", "GPUs as index:vram,... e.g. 0:4,1:8.", required=False),
            Flag("no-gpu", "", "NoGPU", "Offer no GPU.", required=False, is_bool=True),
        ),
        payload=onboard_payload,
    ),
    BehaviorCommand("/dms/node/onboarding/offboard", "Withdraw the node's resources."),
    BehaviorCommand("/dms/node/onboarding/status", "Whether the node is onboarded."),
    BehaviorCommand("/dms/node/resources/onboarded", "Resources the node offers."),
    BehaviorCommand("/dms/node/resources/free", "Offered resources not committed or allocated."),
    BehaviorCommand("/dms/node/resources/allocated", "Resources allocated to running work."),
    BehaviorCommand("/dms/node/hardware/spec", "The node's machine resources."),
    BehaviorCommand("/dms/node/hardware/usage", "What the node's machine uses right now."),
    BehaviorCommand("/dms/node/vm/list", "VMs started on the node with /dms/node/vm/start/custom."),
    BehaviorCommand(
        "/dms/node/vm/start/custom",
        "Start a VM on the node's vm executor (its default guest unless --kernel/--initrd).",
        flags=(
            Flag("kernel", "k", "kernel_image", "Kernel image: http(s) URL or node path.", False),
            Flag("rootfs", "r", "root_file_system", "Root file system image.", False),
            Flag("initrd", "i", "initrd_path", "Initial RAM disk.", False),
            Flag("args", "a", "kernel_args", "Arguments to pass to the kernel.", False),
            Flag("cpu", "z", "cpu", "CPU cores to allocate (default 1).", False),
            Flag("memory", "m", "memory", "Memory to allocate, MiB (default 1024).", False),
            Flag("command", "", "command", "Command the default guest runs.", False),
            Flag("kernel-sha256", "", "kernel_image_sha256", "SHA-256 of a URL kernel.", False),
            Flag("rootfs-sha256", "", "root_file_system_sha256", "SHA-256 of a URL rootfs.", False),
            Flag("initrd-sha256", "", "initrd_path_sha256", "SHA-256 of a URL initrd.", False),
        ),
        payload=vm_start_payload,
    ),
    BehaviorCommand(
        "/dms/node/vm/stop",
        "Stop a VM started with /dms/node/vm/start/custom and remove its files.",
        flags=(Flag("id", "i", "ExecutionID", "Execution ID of the VM."),),
        payload=lambda values: {"ExecutionID": values["id"], "ExecutionType": "firecracker"},
    ),
)


def _run_behavior(spec: BehaviorCommand, values: dict[str, Any]) -> None:
    rest = _rest()
    if spec.payload is not None:
        payload = spec.payload(values)
    else:
        payload = {flag.key: values[flag.param] for flag in spec.flags} or None
    message = _build(
        values["context"],
        spec.behavior,
        payload,
        dest=values["dest"],
        topic=spec.topic or None,
        invocation=not spec.topic,
        timeout=values["timeout"],
        expiry=values["expiry"],
        client=rest,
    )
    if spec.topic:
        _show_replies(rest.broadcast(message.envelope), values["as_json"])
    else:
        _show_reply(rest.invoke(message.envelope), values["as_json"])


def _command_for(spec: BehaviorCommand) -> Callable[..., None]:
    params = [
        inspect.Parameter(
            "context", inspect.Parameter.KEYWORD_ONLY, default="user", annotation=ContextOpt
        ),
        inspect.Parameter(
            "timeout", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=TimeoutOpt
        ),
        inspect.Parameter(
            "expiry", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ExpiryOpt
        ),
        inspect.Parameter(
            "as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt
        ),
    ]
    if not spec.topic:
        params.append(
            inspect.Parameter(
                "dest", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DestOpt
            )
        )
    for flag in spec.flags:
        names = (f"--{flag.name}", f"-{flag.short}") if flag.short else (f"--{flag.name}",)
        option = typer.Option(*names, help=flag.help)
        if flag.is_bool:
            params.append(
                inspect.Parameter(
                    flag.param,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=False,
                    annotation=Annotated[bool, option],
                )
            )
            continue
        params.append(
            inspect.Parameter(
                flag.param,
                inspect.Parameter.KEYWORD_ONLY,
                default=... if flag.required else None,
                annotation=Annotated[str, option]
                if flag.required
                else Annotated[str | None, option],
            )
        )

    def command(**values: Any) -> None:
        values.setdefault("dest", None)
        _run_behavior(spec, values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = spec.help
    command.__name__ = spec.behavior.strip("/").replace("/", "_")
    return command


for _spec in CATALOG:
    cmd_app.command(_spec.behavior, help=_spec.help)(_command_for(_spec))
