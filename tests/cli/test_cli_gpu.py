"""``nunet gpu list|test`` as the real console script, and the GPU choice of ``onboard``.

The console-script tests run with ``PATH`` set to a directory of our own, so the vendor tools and
``docker`` the CLI finds are exactly the ones a test puts there: none (this machine's case: no
GPU), or stand-ins that print real recorded ``rocm-smi`` output and record the ``docker`` argv.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.cli import _actor
from dms.cli._gpu import DEFAULT_IMAGES, gpu_test_argv, gpu_tests, no_gpu_message
from dms.cli._gpu_prompt import ask_gpus, choose_gpus, describe_gpu, parse_gpu_answer
from dms.errors import InvalidInput
from dms.resources import GPU, GPUScan, GPUVendor, scan_gpus

NUNET = str(Path(sys.executable).parent / "nunet")
FIXTURES = Path(__file__).parent.parent / "resources" / "fixtures"
GIB = 1024**3

T4 = GPU(0, GPUVendor.NVIDIA, "0000:01:00.0", "Tesla T4", 16 * GIB, "GPU-1")
A100 = GPU(1, GPUVendor.NVIDIA, "0000:02:00.0", "A100", 40 * GIB, "GPU-2")
MI210 = GPU(2, GPUVendor.AMD, "0000:03:00.0", "MI210", 64 * GIB, "")
MI100 = GPU(3, GPUVendor.AMD, "0000:04:00.0", "MI100", 32 * GIB, "")
ARC = GPU(4, GPUVendor.INTEL, "0000:05:00.0", "Arc A770", 16 * GIB, "")


# -- the real console script -----------------------------------------------------------------


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def tool(bin_dir: Path, name: str, body: str) -> None:
    """A stand-in executable ``name`` in ``bin_dir``, written in Python."""
    script = bin_dir / name
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    script.chmod(0o755)


def nunet(bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NUNET, *args],
        env={"PATH": str(bin_dir), "HOME": str(bin_dir.parent), **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@pytest.fixture
def no_real_gpu() -> Iterator[None]:
    if scan_gpus().gpus:  # pragma: no cover - only on a machine with a GPU and its driver
        pytest.skip("this machine has a GPU")
    yield


@pytest.mark.usefixtures("no_real_gpu")
def test_gpu_test_without_a_gpu_says_why_for_each_vendor(bin_dir: Path) -> None:
    result = nunet(bin_dir, "gpu", "test")
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no GPU detected: nvidia: ")
    assert "; amd: amd-smi not found on PATH, and rocm-smi not found on PATH; " in lines[0]
    assert lines[0].endswith("; intel: xpu-smi not found on PATH")


@pytest.mark.usefixtures("no_real_gpu")
def test_gpu_list_without_a_gpu(bin_dir: Path) -> None:
    result = nunet(bin_dir, "gpu", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "no GPUs detected:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["nvidia", "amd", "intel"]
    as_json = nunet(bin_dir, "gpu", "list", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
    assert "intel: xpu-smi not found on PATH" in as_json.stderr


@pytest.fixture
def amd_machine(bin_dir: Path) -> Path:
    """rocm-smi replays a real one-GPU output; docker records its argv in docker.log."""
    fixture = FIXTURES / "rocm_smi_1gpu.json"
    tool(bin_dir, "rocm-smi", f"sys.stdout.write(open({str(fixture)!r}).read())")
    tool(
        bin_dir,
        "docker",
        f"open({str(bin_dir / 'docker.log')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print('stand-in docker ran', sys.argv[-1])\n"
        "sys.exit(int(os.environ.get('DOCKER_EXIT', '0')))",
    )
    return bin_dir


@pytest.mark.usefixtures("no_real_gpu")
def test_gpu_list_and_test_with_a_detected_gpu(amd_machine: Path) -> None:
    listed = nunet(amd_machine, "gpu", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {
            "index": 0,
            "vendor": "AMD/ATI",
            "pci_address": "",
            "model": "Radeon RX 7900 XT",
            "vram": 21458059264,
            "uuid": "",
        }
    ]
    table = nunet(amd_machine, "gpu", "list")
    assert "Radeon RX 7900 XT" in table.stdout and "20464 MiB" in table.stdout

    ran = nunet(amd_machine, "gpu", "test")
    assert ran.returncode == 0, ran.stderr
    assert "AMD/ATI GPU 0: OK" in ran.stdout
    assert "stand-in docker ran rocm-smi" in ran.stdout
    log = (amd_machine / "docker.log").read_text().splitlines()
    assert json.loads(log[-1]) == [
        "run", "--rm", "--device", "/dev/kfd", "--device", "/dev/dri",
        "--group-add", "video", "rocm/rocm-terminal", "rocm-smi",
    ]  # fmt: skip

    custom = nunet(amd_machine, "gpu", "test", "--image", "my/rocm:6", "--index", "0")
    assert custom.returncode == 0 and json.loads(log_last(amd_machine))[-2] == "my/rocm:6"

    failed = nunet(amd_machine, "gpu", "test", DOCKER_EXIT="125")
    assert failed.returncode != 0 and "AMD/ATI GPU 0: FAILED (exit status 125)" in failed.stdout
    assert failed.stderr.strip().splitlines()[-1] == "error: GPU test failed for AMD/ATI GPU 0"

    unknown = nunet(amd_machine, "gpu", "test", "--index", "7")
    assert unknown.stderr.strip() == "error: no GPU with index 7 (detected: 0)"

    (amd_machine / "docker").unlink()
    no_docker = nunet(amd_machine, "gpu", "test")
    assert no_docker.returncode != 0
    assert no_docker.stderr.strip() == (
        "error: cannot test GPUs: the docker CLI is not installed (docker not on PATH)"
    )


def log_last(bin_dir: Path) -> str:
    return (bin_dir / "docker.log").read_text().splitlines()[-1]


# -- the docker command per vendor (pure) ----------------------------------------------------


def test_docker_argv_per_vendor() -> None:
    assert gpu_test_argv(A100) == [
        "docker", "run", "--rm", "--gpus", "device=GPU-2",
        "nvidia/cuda:12.4.1-base-ubuntu22.04", "nvidia-smi",
    ]  # fmt: skip
    assert gpu_test_argv(MI210, docker="/usr/bin/docker") == [
        "/usr/bin/docker", "run", "--rm", "--device", "/dev/kfd", "--device", "/dev/dri",
        "--group-add", "video", "rocm/rocm-terminal", "rocm-smi",
    ]  # fmt: skip
    assert gpu_test_argv(ARC, image="intel/xpumanager:v1") == [
        "docker", "run", "--rm", "--device", "/dev/dri", "intel/xpumanager:v1",
        "xpu-smi", "discovery",
    ]  # fmt: skip
    assert set(DEFAULT_IMAGES) == {GPUVendor.NVIDIA, GPUVendor.AMD, GPUVendor.INTEL}
    with pytest.raises(InvalidInput, match="unknown vendor"):
        gpu_test_argv(GPU(9, GPUVendor.UNKNOWN))


def test_nvidia_gpu_without_a_uuid_is_selected_by_index() -> None:
    no_uuid = GPU(5, GPUVendor.NVIDIA, "0000:06:00.0", "Tesla T4", 16 * GIB, "")
    assert gpu_test_argv(no_uuid)[3:5] == ["--gpus", "device=5"]


def test_loading_the_cli_does_not_import_the_docker_sdk() -> None:
    code = "import sys, dms.cli.main; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_one_run_per_nvidia_gpu_and_one_per_other_vendor() -> None:
    tests = gpu_tests([T4, A100, MI210, MI100, ARC])
    assert [t.label for t in tests] == [
        "GPU 0 (Tesla T4)",
        "GPU 1 (A100)",
        "AMD/ATI GPU 2, 3",
        "Intel GPU 4",
    ]
    assert [t.argv[4] for t in tests[:2]] == ["device=GPU-1", "device=GPU-2"]
    assert tests[2].argv[-1] == "rocm-smi" and tests[3].argv[-2:] == ["xpu-smi", "discovery"]


def test_no_gpu_message_is_one_line() -> None:
    scan = GPUScan(
        unavailable={
            GPUVendor.NVIDIA: "NVML unavailable: NVML Shared Library Not Found",
            GPUVendor.INTEL: "xpu-smi not found on PATH",
        }
    )
    assert no_gpu_message(scan) == (
        "no GPU detected: nvidia: NVML unavailable: NVML Shared Library Not Found; "
        "intel: xpu-smi not found on PATH"
    )
    assert no_gpu_message(GPUScan()) == "no GPU detected"


# -- the onboarding GPU prompt (pure) --------------------------------------------------------


class Console:
    """Scripted answers in, everything told collected."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.questions: list[str] = []
        self.told: list[str] = []

    def ask(self, question: str) -> str:
        self.questions.append(question)
        return self.answers.pop(0)

    def tell(self, text: str) -> None:
        self.told.append(text)


def test_answer_is_checked_against_the_detected_gpus() -> None:
    gpus = [T4, A100]
    assert parse_gpu_answer(gpus, " 0:4, 1:8GiB ") == "0:4,1:8GiB"
    assert parse_gpu_answer(gpus, "") == ""
    assert parse_gpu_answer(gpus, "1:512MiB") == "1:512MiB"
    for answer, error in [
        ("0", "expected index:vram"),
        ("x:4", "expected index:vram"),
        ("5:4", "no GPU with index 5 (detected: 0, 1)"),
        ("0:4,0:2", "GPU 0 is given twice"),
        ("0:0", "VRAM must be more than 0"),
        ("0:17", "GPU 0: 17 GiB is more than its 16 GiB VRAM"),
        ("0:lots", "invalid size"),
    ]:
        with pytest.raises(InvalidInput, match=re.escape(error)):
            parse_gpu_answer(gpus, answer)


def test_prompt_lists_the_gpus_and_asks_again_after_a_bad_answer() -> None:
    console = Console("0:64", "0:4,1:8")
    assert ask_gpus([T4, A100], console.ask, console.tell) == "0:4,1:8"
    assert console.told[:3] == [
        "GPUs on this machine:",
        "  0: NVIDIA Tesla T4, 16 GiB VRAM, PCI 0000:01:00.0",
        "  1: NVIDIA A100, 40 GiB VRAM, PCI 0000:02:00.0",
    ]
    assert console.told[3] == "error: GPU 0: 64 GiB is more than its 16 GiB VRAM"
    assert len(console.questions) == 2 and "empty for none" in console.questions[0]


def test_prompt_gives_up_after_three_bad_answers() -> None:
    console = Console("a", "b", "c", "0:4")
    with pytest.raises(InvalidInput, match="no valid GPU choice after 3 attempts"):
        ask_gpus([T4], console.ask, console.tell)
    assert console.answers == ["0:4"]


def test_choice_without_gpus_without_a_terminal_and_when_declined() -> None:
    console = Console()
    assert choose_gpus([], interactive=True, ask=console.ask, tell=console.tell) is None
    assert console.told == [] and console.questions == []

    assert choose_gpus([T4], interactive=False, ask=console.ask, tell=console.tell) == ""
    assert console.questions == []
    assert console.told[0].startswith("not onboarding any GPU: stdin is not a terminal")
    assert describe_gpu(T4) in console.told[0]

    declined = Console("")
    assert choose_gpus([T4], interactive=True, ask=declined.ask, tell=declined.tell) == ""


def test_onboard_payload_asks_only_when_gpus_exist_and_nothing_was_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_actor, "scan_gpus", lambda: GPUScan(gpus=(T4,)))
    base = {"cpu": "1", "ram": "2", "disk": "1", "gpus": None, "no_gpu": False, "dest": None}
    # pytest's stdin is not a terminal: no prompt, no GPU, and stderr says so.
    payload = _actor.onboard_payload(base)
    assert (payload["NoGPU"], payload["GPUs"]) == (True, "")
    assert "not onboarding any GPU" in capsys.readouterr().err

    monkeypatch.setattr(_actor.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(_actor, "_ask", lambda question: "0:4")
    payload = _actor.onboard_payload(base)
    assert (payload["NoGPU"], payload["GPUs"]) == (False, "0:4")
    assert "GPUs on this machine:" in capsys.readouterr().err

    def no_prompt(question: str) -> str:
        raise AssertionError("prompted")

    monkeypatch.setattr(_actor, "_ask", no_prompt)
    assert _actor.onboard_payload({**base, "gpus": "0:2"})["GPUs"] == "0:2"
    assert _actor.onboard_payload({**base, "no_gpu": True})["NoGPU"] is True
    assert _actor.onboard_payload({**base, "dest": "did:key:z6Mk..."})["GPUs"] == ""
    monkeypatch.setattr(_actor, "scan_gpus", GPUScan)
    assert _actor.onboard_payload(base)["NoGPU"] is False  # nothing to decide


def test_onboard_payload_checks_the_values_before_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan() -> GPUScan:
        raise AssertionError("scanned")

    monkeypatch.setattr(_actor, "scan_gpus", no_scan)
    base = {"cpu": "1", "ram": "2", "disk": "1", "gpus": None, "no_gpu": False, "dest": None}
    with pytest.raises(InvalidInput, match="invalid size"):
        _actor.onboard_payload({**base, "ram": "lots"})
    with pytest.raises(InvalidInput, match="invalid GPU 'x'"):
        _actor.onboard_payload({**base, "gpus": "x"})
