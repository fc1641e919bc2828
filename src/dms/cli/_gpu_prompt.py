"""Which GPUs to onboard: asked when ``onboard`` gets neither ``--gpus`` nor ``--no-gpu``.

Why: a provider with GPUs who forgets ``--gpus`` would silently offer none; asking (with the
detected GPUs listed) makes the choice explicit. A script (stdin not a terminal) is never
prompted: it onboards no GPU and is told so on stderr. The logic is pure (``ask`` and ``tell``
are passed in) so tests feed it synthetic GPUs and typed answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dms.errors import InvalidInput
from dms.resources import GPU, format_size, parse_size, split_gpu_list

ATTEMPTS = 3
QUESTION = (
    "GPUs to onboard as index:VRAM (GiB unless a unit is given), e.g. 0:4,1:8; empty for none"
)


def describe_gpu(gpu: GPU) -> str:
    """``"0: NVIDIA Tesla T4, 15 GiB VRAM, PCI 0000:01:00.0"``."""
    model = f"{gpu.vendor.value} {gpu.model}".strip()
    pci = f", PCI {gpu.pci_address}" if gpu.pci_address else ""
    return f"{gpu.index}: {model}, {format_size(gpu.vram)} VRAM{pci}"


def parse_gpu_answer(gpus: Sequence[GPU], answer: str) -> str:
    """Check an ``index:vram,...`` answer against ``gpus``; returns it as the ``GPUs`` field.

    The parts are kept as typed (``0:4`` stays ``0:4``, GiB), which is also what a Go DMS
    parses. Raises :class:`InvalidInput` naming the first bad part. The syntax is
    :func:`dms.resources.split_gpu_list`'s; checked here, for the prompt, is that each GPU was
    detected, is given once and gets more than 0 and at most its VRAM.
    """
    by_index = {g.index: g for g in gpus}
    parts: list[str] = []
    seen: set[int] = set()
    for index, vram_text in split_gpu_list(answer):
        gpu = by_index.get(index)
        if gpu is None:
            known = ", ".join(str(i) for i in by_index)
            raise InvalidInput(f"no GPU with index {index} (detected: {known})")
        if index in seen:
            raise InvalidInput(f"GPU {index} is given twice")
        seen.add(index)
        vram = parse_size(vram_text)
        if vram <= 0:
            raise InvalidInput(f"GPU {index}: VRAM must be more than 0")
        if vram > gpu.vram:
            raise InvalidInput(
                f"GPU {index}: {format_size(vram)} is more than its {format_size(gpu.vram)} VRAM"
            )
        parts.append(f"{index}:{vram_text}")
    return ",".join(parts)


def ask_gpus(
    gpus: Sequence[GPU],
    ask: Callable[[str], str],
    tell: Callable[[str], None],
    *,
    attempts: int = ATTEMPTS,
) -> str:
    """List ``gpus``, ask which to onboard; re-ask after a bad answer (``attempts`` in all)."""
    tell("GPUs on this machine:")
    for gpu in gpus:
        tell(f"  {describe_gpu(gpu)}")
    for _ in range(attempts):
        try:
            return parse_gpu_answer(gpus, ask(QUESTION))
        except InvalidInput as exc:
            tell(f"error: {exc}")
    raise InvalidInput(f"no valid GPU choice after {attempts} attempts; pass --gpus or --no-gpu")


def choose_gpus(
    gpus: Sequence[GPU],
    *,
    interactive: bool,
    ask: Callable[[str], str],
    tell: Callable[[str], None],
) -> str | None:
    """The ``GPUs`` to onboard when the user gave neither ``--gpus`` nor ``--no-gpu``.

    ``None``: the machine has no GPU, nothing to decide. ``""``: onboard no GPU (the user said
    so, or there is no terminal to ask on, which ``tell`` reports). Otherwise the chosen
    ``index:vram,...``.
    """
    if not gpus:
        return None
    if not interactive:
        found = ", ".join(describe_gpu(g) for g in gpus)
        tell(
            f"not onboarding any GPU: stdin is not a terminal, so no prompt (found {found}); "
            "pass --gpus index:vram,... to offer GPUs, or --no-gpu to silence this"
        )
        return ""
    return ask_gpus(gpus, ask, tell)
