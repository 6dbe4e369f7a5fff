"""Timing, peak memory and provenance: the one measurement module every method goes through.

Time
    ``time.perf_counter`` around the call, with ``torch.cuda.synchronize`` before and after on
    CUDA (one clock for GPU and CPU-only methods alike). Reported per image in ms; summaries give
    the median (headline), the IQR and the mean. Warm-up calls happen in the runner.

Peak memory
    CUDA (``mem_method="cuda_allocator"``): ``reset_peak_memory_stats`` before each image, then
    ``max_memory_allocated`` (weights plus activations; ``mem_peak_delta_mib`` subtracts what was
    allocated before the call) and ``max_memory_reserved``. The CUDA context is not included.
    CPU: the resident-set high-water mark (VmHWM) of the process, which runs one (method, input
    size) alone (a fresh subprocess), minus its resident set after setup (model built, weights
    loaded, before the first image). Where Linux lets us reset VmHWM (``/proc/self/clear_refs``)
    it is reset before every image (``mem_method="rss_hwm_reset"``); otherwise the lifetime
    ``ru_maxrss`` is used (``mem_method="rss_subprocess"``, monotone over images). RSS counts
    what C++ libraries (pydensecrf, OpenCV) allocate, which ``tracemalloc`` would miss. MiB = 2^20.

Allocator
    Measured subprocesses start with a tuned glibc allocator by default (``allocator: tuned``),
    as CPU inference launchers tune theirs (PyTorch's ``torch.backends.xeon.run_cpu`` preloads
    jemalloc or tcmalloc): ``GLIBC_TUNABLES`` with an mmap threshold of 32 MiB and a trim
    threshold of 1 GiB, so freed tensors up to 32 MiB are reused from the heap instead of being
    unmapped and faulted in again. Results are unchanged; a method that makes and frees large
    tensors in a loop loses its page-fault time, and peak RSS may rise by what the heap keeps.
    ``allocator: default`` runs with the shell's settings. glibc reads the variable once, at
    process start, so it is set in the child's environment. Every method of a sweep runs under
    the same setting, and each record's provenance says which (``allocator``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from bench.core.config import check_allocator

T = TypeVar("T")
MIB = float(1 << 20)
TUNED_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
_REPO = Path(__file__).resolve().parents[2]


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """Run ``fn`` once and return its result and wall time in ms (synchronised on CUDA)."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, (time.perf_counter() - start) * 1e3


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, IQR (q75 - q25), mean and count of finite values; NaNs when empty."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"median": float("nan"), "iqr": float("nan"), "mean": float("nan"), "n": 0}
    q25, q50, q75 = np.percentile(arr, [25, 50, 75])
    return {"median": float(q50), "iqr": float(q75 - q25), "mean": float(arr.mean()), "n": int(arr.size)}


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): how busy the machine was while timing."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _ru_maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


class MemoryProbe:
    """Peak memory of one call; ``setup_done()`` once after building the method."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline_bytes = 0
        self.can_reset = device.type != "cuda" and _reset_hwm()

    def setup_done(self) -> None:
        """Record the post-setup baseline (resident set, or allocated CUDA memory)."""
        if self.device.type == "cuda":
            sync(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
        else:
            rss = _status_kib("VmRSS")
            self.baseline_bytes = rss * 1024 if rss is not None else _ru_maxrss_bytes()

    def start(self) -> None:
        """Reset the high-water mark before a call."""
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._cuda_before = torch.cuda.memory_allocated(self.device)
        elif self.can_reset:
            _reset_hwm()

    def stop(self) -> dict[str, Any]:
        """Peak since ``start``: ``mem_peak_mib``, ``mem_peak_delta_mib``, ``mem_reserved_mib``, ``mem_method``."""
        if self.device.type == "cuda":
            sync(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            return {
                "mem_method": "cuda_allocator",
                "mem_peak_mib": peak / MIB,
                "mem_peak_delta_mib": (peak - self._cuda_before) / MIB,
                "mem_reserved_mib": torch.cuda.max_memory_reserved(self.device) / MIB,
            }
        hwm = _status_kib("VmHWM") if self.can_reset else None
        peak = hwm * 1024 if hwm is not None else _ru_maxrss_bytes()
        return {
            "mem_method": "rss_hwm_reset" if hwm is not None else "rss_subprocess",
            "mem_peak_mib": peak / MIB,
            "mem_peak_delta_mib": max(peak - self.baseline_bytes, 0) / MIB,
            "mem_reserved_mib": None,
        }


def child_env(allocator: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a measured subprocess: ``base`` (default ``os.environ``) plus the allocator setting.

    ``tuned`` appends ``TUNED_MALLOC`` to ``GLIBC_TUNABLES`` (later entries win); ``default``
    leaves the environment as given.
    """
    env = dict(os.environ if base is None else base)
    if check_allocator(allocator) == "tuned":
        env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES"), TUNED_MALLOC) if t)
    return env


def allocator_in_use() -> dict[str, Any]:
    """This process's allocator setting, for provenance: tuned or not, and ``GLIBC_TUNABLES``."""
    tunables = os.environ.get("GLIBC_TUNABLES")
    return {"tuned": TUNED_MALLOC in (tunables or ""), "glibc_tunables": tunables}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_name(device: torch.device) -> str:
    """GPU name for CUDA devices, CPU model otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def _versions() -> dict[str, str | None]:
    import cv2

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
    }
    for module in ("mmseg", "mmcv", "pydensecrf"):
        mod = sys.modules.get(module)
        if mod is not None:
            versions[module] = getattr(mod, "__version__", "present")
    return versions


# Environment variables that choose the CPU kernels of torch (ATen, oneDNN), numpy and OpenCV: a
# machine can imitate another CPU's kernels with them (the drift gate's tolerances are measured so).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "NPY_DISABLE_CPU_FEATURES", "OPENCV_CPU_DISABLE")
_SIMD_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
               "avx512_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """The SIMD feature flags of this CPU that decide which kernels run (from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in _SIMD_FLAGS if f in have]
    except OSError:
        pass
    return []


def kernel_set() -> dict[str, Any]:
    """What floating-point results on this CPU depend on: CPU, SIMD flags, kernel overrides, versions, threads."""
    import cv2

    return {"cpu": cpu_model(), "simd": cpu_flags(), "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}, "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__, "threads": torch.get_num_threads()}


def training_fingerprint() -> str:
    """Hash of :func:`kernel_set`: two machines with the same one train bit-identical weights."""
    key = json.dumps(kernel_set(), sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def machine_fingerprint(device: torch.device) -> str:
    """Hash of what time and memory depend on: device model, core count, threads, torch."""
    key = f"{device_name(device)}|{os.cpu_count()}|{torch.get_num_threads()}|{torch.__version__}|{device.type}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def provenance(device: torch.device, seed: int) -> dict[str, Any]:
    """What every record carries about code, machine and settings."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "versions": _versions(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "dtype": "float32",
        "allocator": allocator_in_use(),
        "seed": seed,
        "hostname": socket.gethostname(),
        "fingerprint": machine_fingerprint(device),
    }
