"""``nunet gpu list`` / ``nunet gpu test``: the GPUs of this machine; can containers use them?

Why: before onboarding GPUs, a provider wants to see what the DMS detects (the same detection
the daemon runs) and, when a GPU is missing, *why* (no driver, no vendor tool). ``gpu test``
then proves a container really reaches the GPU, which is what deployments need: it runs the
vendor's own tool in the vendor's image through the ``docker`` CLI, the way a user would check
by hand (``docker run --gpus ... nvidia-smi``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dms import gojson
from dms.cli._common import info
from dms.errors import DMSError, InvalidInput
from dms.resources import GPU, GPUScan, GPUVendor, format_size, scan_gpus

app = typer.Typer(no_args_is_help=True, help="GPUs of this machine: list them, test them.")

#: The image each vendor's test runs in (``--image`` overrides it).
DEFAULT_IMAGES = {
    GPUVendor.NVIDIA: "nvidia/cuda:12.4.1-base-ubuntu22.04",
    GPUVendor.AMD: "rocm/rocm-terminal",
    GPUVendor.INTEL: "intel/xpumanager",
}


def no_gpu_message(scan: GPUScan) -> str:
    """``"no GPU detected: nvidia: ...; amd: ...; intel: ..."`` (one line)."""
    reasons = "; ".join(scan.reasons())
    return f"no GPU detected: {reasons}" if reasons else "no GPU detected"


@dataclass(frozen=True)
class GPUTest:
    """One container run: what it checks (``label``) and the ``docker`` argv."""

    label: str
    argv: list[str]


#: The vendor's tool each test runs in the container.
_TOOLS = {
    GPUVendor.NVIDIA: ["nvidia-smi"],
    GPUVendor.AMD: ["rocm-smi"],
    GPUVendor.INTEL: ["xpu-smi", "discovery"],
}


def gpu_test_argv(gpu: GPU, image: str | None = None, docker: str = "docker") -> list[str]:
    """The ``docker run`` argv that runs ``gpu``'s vendor tool inside a container.

    The container gets the GPU exactly as the docker executor would give it to a deployment
    (:func:`dms.executor.gpu_run_flags`): NVIDIA selects the device with
    ``--gpus device=<UUID>`` (or ``<index>`` when NVML gave no UUID: NVIDIA GPUs come first in
    the DMS's numbering, so their DMS index is their NVML index). AMD (``/dev/kfd`` +
    ``/dev/dri``) and Intel (``/dev/dri``) expose every device of the vendor at once.
    """
    vendor = gpu.vendor
    if vendor not in DEFAULT_IMAGES:
        raise InvalidInput(f"cannot test GPU {gpu.index}: unknown vendor {vendor.value!r}")
    # Imported here: it loads the Docker SDK, which other ``nunet`` commands should not pay for.
    from dms.executor import gpu_run_flags

    img = image or DEFAULT_IMAGES[vendor]
    return [docker, "run", "--rm", *gpu_run_flags([gpu]), img, *_TOOLS[vendor]]


def gpu_tests(
    gpus: Sequence[GPU], image: str | None = None, docker: str = "docker"
) -> list[GPUTest]:
    """The runs that test ``gpus``: one per NVIDIA GPU, one per other vendor (shared devices)."""
    tests: list[GPUTest] = []
    done: set[GPUVendor] = set()
    for gpu in gpus:
        if gpu.vendor is GPUVendor.NVIDIA:
            label = f"GPU {gpu.index} ({gpu.model or gpu.vendor.value})"
        elif gpu.vendor in done:
            continue
        else:
            done.add(gpu.vendor)
            indices = ", ".join(str(g.index) for g in gpus if g.vendor is gpu.vendor)
            label = f"{gpu.vendor.value} GPU {indices}"
        tests.append(GPUTest(label, gpu_test_argv(gpu, image, docker)))
    return tests


def _table(gpus: Sequence[GPU]) -> Table:
    table = Table(title="GPUs", title_justify="left")
    for column in ("index", "vendor", "model", "VRAM", "PCI address", "UUID"):
        table.add_column(column, overflow="fold")
    for gpu in gpus:
        table.add_row(
            str(gpu.index),
            gpu.vendor.value,
            gpu.model,
            format_size(gpu.vram),
            gpu.pci_address,
            gpu.uuid,
        )
    return table


@app.command("list")
def list_gpus(
    as_json: Annotated[bool, typer.Option("--json", help="Print the GPUs as Go JSON.")] = False,
) -> None:
    """List the GPUs the DMS detects; with none, say why for each vendor."""
    scan = scan_gpus()
    if as_json:  # stdout stays one JSON document; the reasons go to stderr
        typer.echo(gojson.marshal(list(scan.gpus)).decode())
        for reason in () if scan.gpus else scan.reasons():
            info(reason)
    elif scan.gpus:
        Console(highlight=False, emoji=False).print(_table(scan.gpus))
    else:
        typer.echo("no GPUs detected:")
        for reason in scan.reasons():
            typer.echo(f"  {reason}")


@app.command("test")
def test_gpus(
    index: Annotated[
        int | None, typer.Option("--index", "-i", help="Test only this GPU (default: all).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Container image (default: the vendor's, e.g. nvidia/cuda)."),
    ] = None,
) -> None:
    """Run each GPU vendor's tool in a container (docker) to check containers can use the GPU."""
    scan = scan_gpus()
    if not scan.gpus:
        raise DMSError(no_gpu_message(scan))
    gpus = [g for g in scan.gpus if index is None or g.index == index]
    if not gpus:
        known = ", ".join(str(g.index) for g in scan.gpus)
        raise InvalidInput(f"no GPU with index {index} (detected: {known})")
    docker = shutil.which("docker")
    if docker is None:
        raise DMSError("cannot test GPUs: the docker CLI is not installed (docker not on PATH)")
    failed: list[str] = []
    for test in gpu_tests(gpus, image, docker):
        info(f"testing {test.label}: {shlex.join(test.argv)}")
        try:
            code = subprocess.run(test.argv, check=False).returncode  # fixed argv, no shell
        except OSError as exc:
            raise DMSError(f"cannot run docker: {exc.strerror or exc}") from None
        if code == 0:
            typer.echo(f"{test.label}: OK")
        else:
            typer.echo(f"{test.label}: FAILED (exit status {code})")
            failed.append(test.label)
    if failed:
        raise DMSError(f"GPU test failed for {', '.join(failed)}")
