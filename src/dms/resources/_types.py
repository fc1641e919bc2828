"""``types.Resources`` and its parts (CPU, RAM, Disk, GPU), as the Go DMS puts them on the wire.

Why frozen dataclasses with ``__gojson__``: these structures travel inside signed envelopes
(``/public/status``, bids, commits, onboarding), so the bytes must match Go's ``json.Marshal``:
field order, ``omitempty`` (CPU descriptive fields, RAM/disk extras, the GPU list), ``cores`` as
a Go ``float32``, sizes in bytes, clocks in Hz. Incoming JSON is parsed leniently, the way
Go's decoder does: keys match case-insensitively, unknown keys are ignored, missing ones are 0.
Arithmetic lives in :mod:`._arith`; the methods here delegate to it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dms import gojson
from dms.errors import InvalidInput

if TYPE_CHECKING:
    from dms.resources._comparison import Comparison


def to_float32(value: float) -> float:
    """The float Go stores in a ``float32`` field."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def round_cores(value: float) -> float:
    """Go's ``round(float32, 2)``: half away from zero in float64, stored as float32."""
    scaled = float(to_float32(value)) * 100.0
    rounded = math.floor(abs(scaled) + 0.5) * (1 if scaled >= 0 else -1)
    return to_float32(rounded / 100.0)


class GPUVendor(StrEnum):
    """``types.GPUVendor``: the exact strings Go nodes send."""

    NVIDIA = "NVIDIA"
    AMD = "AMD/ATI"
    INTEL = "Intel"
    UNKNOWN = "Unknown"
    NONE = "None"

    @classmethod
    def parse(cls, text: str) -> GPUVendor:
        """Go's ``ParseGPUVendor``: substring match, case-insensitive (``"AMD"``, ``"ATI"``...).

        The exact wire values (``"None"``, ``"Unknown"``) map to themselves. Unlike Go, Intel is
        tested before AMD/ATI: Go's ``"ATI"`` substring matches "Intel(R) Corpor*ati*on".
        """
        for member in cls:
            if text == member.value:
                return member
        upper = text.upper()
        if "NVIDIA" in upper:
            return cls.NVIDIA
        if "INTEL" in upper:
            return cls.INTEL
        if "AMD" in upper or "ATI" in upper:
            return cls.AMD
        return cls.UNKNOWN


# -- lenient decoding helpers -------------------------------------------------------------------


def _fields(data: Any, what: str) -> dict[str, Any]:
    """A JSON object keyed by :func:`dms.gojson.fold` of its keys (Go's field matching)."""
    return gojson.folded(data, what)


def _uint(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what}.{key}: expected a number, got {value!r}")
    if value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"{what}.{key}: expected a non-negative integer, got {value!r}")
    return int(value)


def _int(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what}.{key}: expected a number, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidInput(f"{what}.{key}: expected an integer, got {value!r}")
    return int(value)


def _float(obj: Mapping[str, Any], key: str, what: str) -> float:
    value = obj.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what}.{key}: expected a number, got {value!r}")
    return float(value)


def _str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{what}.{key}: expected a string, got {value!r}")
    return value


# -- the types ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CPU:
    """``types.CPU``: ``clock_speed`` in Hz, ``cores`` (fractional, float32), the rest omitempty.

    ``cores`` counts what may be used (onboarded or requested cores may be fractional); detection
    fills physical cores, ``threads`` the logical CPUs.
    """

    clock_speed: float = 0.0
    cores: float = 0.0
    model: str = ""
    vendor: str = ""
    threads: int = 0
    architecture: str = ""
    cache_size: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cores", to_float32(self.cores))

    @property
    def compute(self) -> float:
        """Total compute in Hz (cores × clock), what Go compares."""
        return float(self.cores) * self.clock_speed

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(clock_speed=float(self.clock_speed), cores=gojson.Float32(self.cores))
        if self.model:
            out["model"] = self.model
        if self.vendor:
            out["vendor"] = self.vendor
        if self.threads:
            out["threads"] = self.threads
        if self.architecture:
            out["architecture"] = self.architecture
        if self.cache_size:
            out["cache_size"] = self.cache_size
        return out

    @classmethod
    def from_json(cls, data: Any) -> CPU:
        """Lenient decode of a Go ``types.CPU`` object."""
        obj = _fields(data, "cpu")
        return cls(
            clock_speed=_float(obj, "clock_speed", "cpu"),
            cores=_float(obj, "cores", "cpu"),
            model=_str(obj, "model", "cpu"),
            vendor=_str(obj, "vendor", "cpu"),
            threads=_int(obj, "threads", "cpu"),
            architecture=_str(obj, "architecture", "cpu"),
            cache_size=_uint(obj, "cache_size", "cpu"),
        )


@dataclass(frozen=True)
class RAM:
    """``types.RAM``: ``size`` in bytes; ``clock_speed`` (Hz) and ``type`` are omitempty."""

    size: int = 0
    clock_speed: int = 0
    type: str = ""

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(size=self.size)
        if self.clock_speed:
            out["clock_speed"] = self.clock_speed
        if self.type:
            out["type"] = self.type
        return out

    @classmethod
    def from_json(cls, data: Any) -> RAM:
        """Lenient decode of a Go ``types.RAM`` object."""
        obj = _fields(data, "ram")
        return cls(
            size=_uint(obj, "size", "ram"),
            clock_speed=_uint(obj, "clock_speed", "ram"),
            type=_str(obj, "type", "ram"),
        )


@dataclass(frozen=True)
class Disk:
    """``types.Disk``: ``size`` in bytes; the descriptive fields are omitempty."""

    size: int = 0
    model: str = ""
    vendor: str = ""
    type: str = ""
    interface: str = ""
    read_speed: int = 0
    write_speed: int = 0

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(size=self.size)
        for key in ("model", "vendor", "type", "interface", "read_speed", "write_speed"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Any) -> Disk:
        """Lenient decode of a Go ``types.Disk`` object."""
        obj = _fields(data, "disk")
        return cls(
            size=_uint(obj, "size", "disk"),
            model=_str(obj, "model", "disk"),
            vendor=_str(obj, "vendor", "disk"),
            type=_str(obj, "type", "disk"),
            interface=_str(obj, "interface", "disk"),
            read_speed=_uint(obj, "read_speed", "disk"),
            write_speed=_uint(obj, "write_speed", "disk"),
        )


@dataclass(frozen=True)
class GPU:
    """``types.GPU``: every field always present on the wire (no omitempty); ``vram`` in bytes.

    ``index`` is the DMS's own numbering (0..n-1 over NVIDIA, then AMD, then Intel devices, as
    Go's ``assignIndexToGPUs`` does), not the vendor tool's device number.
    """

    index: int = 0
    vendor: GPUVendor = GPUVendor.UNKNOWN
    pci_address: str = ""
    model: str = ""
    vram: int = 0
    uuid: str = ""

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            index=self.index,
            vendor=str(self.vendor.value),
            pci_address=self.pci_address,
            model=self.model,
            vram=self.vram,
            uuid=self.uuid,
        )

    @classmethod
    def from_json(cls, data: Any) -> GPU:
        """Lenient decode of a Go ``types.GPU`` object (an unknown vendor string is parsed)."""
        obj = _fields(data, "gpu")
        return cls(
            index=_int(obj, "index", "gpu"),
            vendor=GPUVendor.parse(_str(obj, "vendor", "gpu")),
            pci_address=_str(obj, "pci_address", "gpu"),
            model=_str(obj, "model", "gpu"),
            vram=_uint(obj, "vram", "gpu"),
            uuid=_str(obj, "uuid", "gpu"),
        )


@dataclass(frozen=True)
class Resources:
    """``types.Resources``: ``{"cpu", "gpus" (omitempty), "ram", "disk"}``."""

    cpu: CPU = field(default_factory=CPU)
    gpus: tuple[GPU, ...] = ()
    ram: RAM = field(default_factory=RAM)
    disk: Disk = field(default_factory=Disk)

    def __post_init__(self) -> None:
        if not isinstance(self.gpus, tuple):
            object.__setattr__(self, "gpus", tuple(self.gpus))

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(cpu=self.cpu)
        if self.gpus:
            out["gpus"] = list(self.gpus)
        out["ram"] = self.ram
        out["disk"] = self.disk
        return out

    def to_json(self) -> bytes:
        """Go's ``json.Marshal`` bytes."""
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> Resources:
        """Lenient decode of a Go ``types.Resources`` (or an embedding struct) object."""
        obj = _fields(data, "resources")
        gpus_raw = obj.get("gpus")
        if gpus_raw is not None and (
            not isinstance(gpus_raw, Sequence) or isinstance(gpus_raw, str | bytes)
        ):
            raise InvalidInput("resources.gpus: expected a list")
        return cls(
            cpu=CPU.from_json(obj.get("cpu")),
            gpus=tuple(GPU.from_json(g) for g in gpus_raw or ()),
            ram=RAM.from_json(obj.get("ram")),
            disk=Disk.from_json(obj.get("disk")),
        )

    def add(self, other: Resources) -> Resources:
        """``self + other``: see :func:`dms.resources.add`."""
        from dms.resources._arith import add

        return add(self, other)

    def subtract(self, other: Resources) -> Resources:
        """``self - other``: see :func:`dms.resources.subtract`."""
        from dms.resources._arith import subtract

        return subtract(self, other)

    def compare(self, required: Resources) -> Comparison:
        """How this (a machine's) resources compare with ``required``; see ``compare``."""
        from dms.resources._arith import compare

        return compare(self, required)
