"""Devices and precisions: one vocabulary and one rule for training, inference, search and image embedding.

The rule (``auto``): bf16 only where the device runs it natively (a CUDA GPU with bf16 units; a CPU with
AVX512_BF16 or AMX), else fp16 on CUDA and fp32 on CPU. On a CPU without those instructions bf16 is
emulated and slow: measured on a 2-core AVX2-only AMD EPYC, a bf16 matmul ran at 1.3 GFLOP/s per thread
against 10.5 for fp32, and embedding the demo's test queries took 5:48 in bf16 against 0:38 in fp32.

CPU features are read at run time (``/proc/cpuinfo`` on Linux; ``torch.cpu.get_capabilities()`` or torch's
ATen capability elsewhere; no answer = no native bf16). A oneDNN cap (``ONEDNN_MAX_CPU_ISA=AVX2``, which
with ``ATEN_CPU_CAPABILITY=avx2`` emulates an AVX2-only CPU) counts: bf16 matmuls are emulated under it.
``VIXML_NATIVE_BF16=0|1`` overrides the CPU answer (tests use it to force one).

Importing this module loads no torch; the functions that need it import it.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from vixml.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "NATIVE_BF16_ENV",
    "PRECISIONS",
    "CpuFeatures",
    "Precision",
    "ResolvedPrecision",
    "cpu_features",
    "native_bf16",
    "resolve_device",
    "resolve_precision",
    "torch_dtype",
]

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
"""What a config or a command accepts."""
ResolvedPrecision = Literal["fp32", "bf16", "fp16"]
"""What ``auto`` becomes on a given device."""
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: Every dtype name the code base accepts -> the torch attribute it names.
_DTYPE_NAMES = {
    "fp32": "float32",
    "float32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
}
NATIVE_BF16_ENV = "VIXML_NATIVE_BF16"
#: oneDNN ISA caps below the first one with bf16 dot products (AVX512_CORE_BF16).
_ONEDNN_NO_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
_EMULATED_COST = (
    "emulated bf16 runs 8-9x slower than fp32 (measured on an AVX2-only AMD EPYC: a bf16 matmul 1.3 vs 10.5 "
    "GFLOP/s per thread, the demo's query embedding 5:48 vs 0:38)"
)
_warned: set[tuple[str, ...]] = set()


def torch_dtype(name: str) -> torch.dtype:
    """``"fp32"``/``"float32"``, ``"bf16"``/``"bfloat16"``, ``"fp16"``/``"float16"`` -> the torch dtype.

    Raises:
        ConfigError: any other name (the message lists the valid ones).
    """
    import torch

    if name not in _DTYPE_NAMES:
        raise ConfigError(f"unknown dtype {name!r}; valid: {', '.join(_DTYPE_NAMES)}")
    return getattr(torch, _DTYPE_NAMES[name])


# --------------------------------------------------------------------------------------------- devices
def resolve_device(name: str | torch.device | None = "auto", *, setting: str = "train.device") -> torch.device:
    """``auto`` (or None) -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N``, ``mps`` checked.

    Args:
        name: the device asked for.
        setting: the config key or flag it came from, named in the error.

    Raises:
        ConfigError: an unknown name, or a device this machine does not have (the message says what exists).
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sep = " " if setting.startswith("-") else "="  # a flag (--device cuda) or a config key (train.device=cuda)
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise ConfigError(f"{setting}{sep}{name} is not a device; use auto, cpu, cuda, cuda:N or mps")
    device = torch.device(name)
    fix = f"use {setting}{sep}auto or cpu"
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ConfigError(f"{setting}{sep}{name}, but this machine has {_devices_present(count)}; {fix}")
    if device.type == "mps" and not (torch.backends.mps.is_built() and torch.backends.mps.is_available()):
        raise ConfigError(f"{setting}{sep}{name}, but MPS is not available here; {fix}")
    return device


def _devices_present(cuda_count: int) -> str:
    import torch

    if cuda_count:
        return "CUDA devices " + ", ".join(f"cuda:{i}" for i in range(cuda_count))
    build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return f"no CUDA device (torch {torch.__version__}, {build}): only cpu"


# ----------------------------------------------------------------------------------------- CPU features
@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers for fast arithmetic, read at run time.

    Attributes:
        model: the CPU model name (``"unknown CPU"`` when none can be read).
        avx2, avx512, avx512_bf16, amx: the instruction sets (AVX-512 = AVX512F; AMX = AMX-BF16 tiles).
        limits: ISA caps in force (``"ONEDNN_MAX_CPU_ISA=AVX2"``): bf16 matmuls are emulated under them even
            on hardware that has the instructions.
        torch_kernels: torch's vectorised-kernel level (``torch.backends.cpu.get_cpu_capability()``).
        source: where the flags came from (``/proc/cpuinfo``, ``torch``, or ``none``).
    """

    model: str
    avx2: bool
    avx512: bool
    avx512_bf16: bool
    amx: bool
    limits: tuple[str, ...] = ()
    torch_kernels: str = "unknown"
    source: str = "none"
    vnni: bool = False  # int8 dot products: AVX512_VNNI or AVX-VNNI
    amx_int8: bool = False

    @property
    def native_bf16(self) -> bool:
        """bf16 matmuls run in hardware: AVX512_BF16 or AMX, and no cap hides them."""
        return (self.avx512_bf16 or self.amx) and not self.limits

    @property
    def flags(self) -> list[str]:
        """The instruction sets present, by their usual names (``["AVX2", "AVX-512", ...]``)."""
        named = (
            ("AVX2", self.avx2),
            ("AVX-512", self.avx512),
            ("AVX512_BF16", self.avx512_bf16),
            ("AMX", self.amx),
            ("VNNI", self.vnni),
            ("AMX-INT8", self.amx_int8),
        )
        return [name for name, present in named if present]

    def describe(self) -> str:
        """One line for logs and benchmark records: model, flags, caps."""
        flags = ", ".join(self.flags) or "no AVX2"
        limits = f"; limited by {', '.join(self.limits)}" if self.limits else ""
        return f"{self.model} ({flags}; torch kernels {self.torch_kernels}{limits})"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "limits": list(self.limits), "flags": self.flags, "native_bf16": self.native_bf16}


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's CPU features (read once per process; tests monkeypatch this function)."""
    text = _read_cpuinfo()
    if text is not None and re.search(r"^flags\s*:", text, re.M):
        flags = set(_field(text, "flags").split())
        found = CpuFeatures(
            model=_field(text, "model name") or _fallback_model(),
            avx2="avx2" in flags,
            avx512="avx512f" in flags,
            avx512_bf16="avx512_bf16" in flags,
            amx="amx_bf16" in flags,
            source="/proc/cpuinfo",
            vnni=bool({"avx512_vnni", "avx_vnni"} & flags),
            amx_int8="amx_int8" in flags,
        )
    else:
        found = _torch_features()
    return CpuFeatures(**{**asdict(found), "limits": _isa_limits(), "torch_kernels": _torch_kernels()})


def _read_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _field(text: str, key: str) -> str:
    match = re.search(rf"^{re.escape(key)}\s*:\s*(.*)$", text, re.M)
    return match[1].strip() if match else ""


def _fallback_model() -> str:
    return platform.processor() or platform.machine() or "unknown CPU"


def _torch_features() -> CpuFeatures:
    """Other systems (and Linux without x86 flags): torch's cpuinfo when this torch has it, else its ATen level."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return CpuFeatures(_fallback_model(), False, False, False, False)
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        caps = capabilities()
        return CpuFeatures(
            model=str(caps.get("cpu_name") or _fallback_model()),
            avx2=bool(caps.get("avx2")),
            avx512=bool(caps.get("avx512_f")),
            avx512_bf16=bool(caps.get("avx512_bf16")),
            amx=bool(caps.get("amx_bf16")),
            source="torch",
        )
    level = torch.backends.cpu.get_cpu_capability()  # "AVX512", "AVX2", "DEFAULT", ... (bf16 unknown: no)
    return CpuFeatures(_fallback_model(), level in ("AVX2", "AVX512"), level == "AVX512", False, False, source="torch")


def _isa_limits() -> tuple[str, ...]:
    """A oneDNN ISA cap without bf16 dot products: CPU matmuls then emulate bf16 whatever the hardware has.

    (``ATEN_CPU_CAPABILITY=avx2`` alone leaves bf16 matmuls fast: they run in oneDNN; it is recorded in
    :attr:`CpuFeatures.torch_kernels`.)
    """
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    return (f"ONEDNN_MAX_CPU_ISA={onednn}",) if onednn in _ONEDNN_NO_BF16 else ()


def _torch_kernels() -> str:
    """torch's vectorised-kernel level (``AVX512``, ``AVX2``, ``DEFAULT``...; ``ATEN_CPU_CAPABILITY`` caps it)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return "unknown"
    return str(torch.backends.cpu.get_cpu_capability())


# ----------------------------------------------------------------------------------------------- bf16
def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` runs bf16 arithmetic in hardware.

    CUDA: the GPU has bf16 units (compute capability 8.0, Ampere, and later; ROCm: torch's answer); emulation
    does not count. CPU: AVX512_BF16 or AMX, unless ``VIXML_NATIVE_BF16=0|1`` says otherwise. MPS and others:
    no (never measured).
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        if torch.version.hip:
            return torch.cuda.is_bf16_supported()
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        forced = _forced_native_bf16()
        return cpu_features().native_bf16 if forced is None else forced
    return False


def _forced_native_bf16() -> bool | None:
    value = os.environ.get(NATIVE_BF16_ENV, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ConfigError(f"environment variable {NATIVE_BF16_ENV}={value!r}: expected 0 or 1 (or unset: detect)")


def _cpu_words(native: bool) -> str:
    """The CPU in a reason: ``CPU has AMX/AVX512_BF16``, ``CPU (AVX2 only) emulates bf16``, or why it was forced."""
    forced = _forced_native_bf16()
    features = cpu_features()
    if forced is not None:
        why = f"({NATIVE_BF16_ENV}={int(forced)})"
    elif features.limits:
        why = f"(capped by {', '.join(features.limits)})"
    elif native:
        return "CPU has " + "/".join(f for f in ("AMX", "AVX512_BF16") if f in features.flags)
    else:
        best = "AVX-512 without AVX512_BF16" if features.avx512 else "AVX2 only" if features.avx2 else "no AVX2"
        return f"CPU ({best}) emulates bf16"
    return f"CPU runs bf16 natively {why}" if native else f"CPU emulates bf16 {why}"


def resolve_precision(
    requested: str,
    device: str | torch.device,
    *,
    purpose: str = "training",
    setting: str = "train.precision",
) -> tuple[ResolvedPrecision, str]:
    """The precision to compute in on ``device``, and why, as a short sentence.

    ``auto``: bf16 where :func:`native_bf16`, else fp16 on CUDA, fp32 elsewhere. An explicit name is kept;
    bf16 (or fp16) on a CPU that emulates it logs one WARNING with the measured cost, as does bf16 on a GPU
    that only emulates it.

    Args:
        requested: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: where the computation runs.
        purpose: what is computed (``"training"``, ``"image embedding"``...), named in the warning.
        setting: the config key or flag the choice came from, named in messages.

    Returns:
        ``(precision, reason)``, e.g. ``("fp32", "fp32: CPU (AVX2 only) emulates bf16")``.

    Raises:
        ConfigError: an unknown precision name.
    """
    import torch

    if requested not in PRECISIONS:
        sep = " " if setting.startswith("-") else "="
        raise ConfigError(f"{setting}{sep}{requested} is not a precision; valid: {', '.join(PRECISIONS)}")
    device = torch.device(device)
    native = native_bf16(device)
    if device.type == "cpu":
        where = _cpu_words(native)
    else:
        where = f"GPU {'runs' if native else 'has no'} native bf16" if device.type == "cuda" else device.type
    if requested == "auto":
        if native:
            return "bf16", f"bf16: {where}"
        if device.type == "cuda":
            return "fp16", f"fp16: {where}"
        if device.type == "cpu":
            return "fp32", f"fp32: {where}"
        return "fp32", f"fp32: no mixed precision is chosen automatically on {device.type}"
    if requested == "bf16" and not native and device.type in ("cpu", "cuda"):
        cost = _EMULATED_COST if device.type == "cpu" else "emulated bf16 is slow"
        _warn_once(
            (purpose, requested, device.type),
            f"{setting}=bf16 for {purpose}, but the {where}: {cost}; "
            f"use {setting}=auto (fp32 {'on this CPU' if device.type == 'cpu' else '/fp16'}) unless you "
            "need bf16 numerics",
        )
        return "bf16", f"bf16: asked for ({setting}), emulated on this {device.type.upper()}"
    if requested == "fp16" and device.type == "cpu":
        _warn_once(
            (purpose, requested, device.type),
            f"{setting}=fp16 for {purpose} on CPU: fp16 is emulated on most CPUs and slower than fp32; "
            f"use {setting}=auto",
        )
    return requested, f"{requested}: asked for ({setting})"  # type: ignore[return-value]


def _warn_once(key: tuple[str, ...], message: str) -> None:
    """One WARNING per process and key: a precision resolved at every step must not repeat it."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)
