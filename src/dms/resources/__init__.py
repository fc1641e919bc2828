"""Machine resources: the Go-compatible types, their arithmetic, units and hardware detection.

Public API (everything else is private):

* types: :class:`Resources`, :class:`CPU`, :class:`RAM`, :class:`Disk`, :class:`GPU`,
  :class:`GPUVendor`, :class:`Comparison`; :func:`round_cores` (Go's rounding of core counts);
* arithmetic: :func:`add`, :func:`subtract`, :func:`compare` (also as ``Resources`` methods),
  :class:`ResourceError`;
* units: :func:`parse_size`, :func:`parse_clock`, :func:`format_size`, :func:`format_clock`,
  and the ``index:vram,...`` GPU list: :func:`parse_gpu_list`, :func:`split_gpu_list`;
* detection: :func:`detect_machine`, :func:`detect_gpus`, :func:`scan_gpus`,
  :func:`machine_usage`, :class:`Usage`, :class:`GPUUsage`, :class:`GPUScan`,
  :class:`GPUReading`; the NVML adapter :class:`NVML`, :class:`PyNVML`, :class:`RecordedNVML`;
  the tool-output parsers for AMD and Intel;
* accounting: :class:`ResourceManager` (onboarded/committed/allocated/free, kept in the store),
  :func:`validate_onboarding`, :func:`shortfall`;
* public ports: :class:`PortAllocator` (leases over ``general.port_available_range_*``, kept in
  the store), :func:`port_is_free`, :data:`DEFAULT_PORT_RANGE`;
* location: :class:`Location` (``{continent, country, city, asn, isp}`` and its matching rule).
"""

from dms.resources._arith import add, compare, compare_cpu, compare_gpus, subtract
from dms.resources._comparison import Comparison
from dms.resources._cpu import detect_cpu, goarch
from dms.resources._detect import (
    DEFAULT_PROBES,
    GPUScan,
    GPUUsage,
    Usage,
    detect_gpus,
    detect_machine,
    machine_usage,
    scan_gpus,
)
from dms.resources._disk import detect_disk
from dms.resources._errors import ResourceError
from dms.resources._gpu_amd import (
    parse_amd_smi_static,
    parse_rocm_smi_csv,
    parse_rocm_smi_json,
    probe_amd,
)
from dms.resources._gpu_intel import parse_xpu_discovery, parse_xpu_stats, probe_intel
from dms.resources._gpu_nvidia import NVML, NVMLDevice, PyNVML, RecordedNVML, probe_nvidia
from dms.resources._location import Location
from dms.resources._manager import ResourceManager, shortfall, validate_onboarding
from dms.resources._memory import detect_ram
from dms.resources._ports import DEFAULT_PORT_RANGE, PortAllocator, port_is_free
from dms.resources._tools import GPUReading, ProbeUnavailable
from dms.resources._types import CPU, GPU, RAM, Disk, GPUVendor, Resources, round_cores
from dms.resources._units import (
    format_clock,
    format_size,
    parse_clock,
    parse_gpu_list,
    parse_size,
    split_gpu_list,
)

__all__ = [
    "CPU",
    "DEFAULT_PORT_RANGE",
    "DEFAULT_PROBES",
    "GPU",
    "NVML",
    "RAM",
    "Comparison",
    "Disk",
    "GPUReading",
    "GPUScan",
    "GPUUsage",
    "GPUVendor",
    "Location",
    "NVMLDevice",
    "PortAllocator",
    "ProbeUnavailable",
    "PyNVML",
    "RecordedNVML",
    "ResourceError",
    "ResourceManager",
    "Resources",
    "Usage",
    "add",
    "compare",
    "compare_cpu",
    "compare_gpus",
    "detect_cpu",
    "detect_disk",
    "detect_gpus",
    "detect_machine",
    "detect_ram",
    "format_clock",
    "format_size",
    "goarch",
    "machine_usage",
    "parse_amd_smi_static",
    "parse_clock",
    "parse_gpu_list",
    "parse_rocm_smi_csv",
    "parse_rocm_smi_json",
    "parse_size",
    "parse_xpu_discovery",
    "parse_xpu_stats",
    "port_is_free",
    "probe_amd",
    "probe_intel",
    "probe_nvidia",
    "round_cores",
    "scan_gpus",
    "shortfall",
    "split_gpu_list",
    "subtract",
    "validate_onboarding",
]
