"""vixml.devices: the precision rule (auto = bf16 only where native), CPU feature detection, device checks."""

from __future__ import annotations

import contextlib
import logging

import pytest
import torch

from vixml import devices
from vixml.devices import CpuFeatures, cpu_features, native_bf16, resolve_device, resolve_precision
from vixml.errors import ConfigError
from vixml.models import autocast
from vixml.models.amp import needs_grad_scaler

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 avx f16c fma avx2 bmi2 sha_ni
"""
XEON_AMX = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
AVX2_ONLY = CpuFeatures("AMD EPYC 7B12", avx2=True, avx512=False, avx512_bf16=False, amx=False, source="test")
AMX = CpuFeatures("Intel Xeon 8481C", avx2=True, avx512=True, avx512_bf16=True, amx=True, source="test")


@pytest.fixture
def detector(monkeypatch):
    """Answer the CPU question with the given features (and no override from the environment)."""
    monkeypatch.delenv(devices.NATIVE_BF16_ENV, raising=False)
    monkeypatch.setattr(devices, "_warned", set())

    def use(features: CpuFeatures) -> None:
        monkeypatch.setattr(devices, "cpu_features", lambda: features)

    return use


@pytest.fixture
def cpuinfo(monkeypatch):
    """Parse the given /proc/cpuinfo text (None = not Linux) in a fresh detection."""

    def use(text: str | None) -> CpuFeatures:
        monkeypatch.setattr(devices, "_read_cpuinfo", lambda: text)
        cpu_features.cache_clear()
        return cpu_features()

    yield use
    cpu_features.cache_clear()


# ------------------------------------------------------------------------------------------ the rule
def test_auto_is_fp32_on_a_cpu_that_emulates_bf16(detector):
    detector(AVX2_ONLY)
    assert not native_bf16("cpu")
    assert resolve_precision("auto", "cpu") == ("fp32", "fp32: CPU (AVX2 only) emulates bf16")


def test_auto_is_bf16_when_the_detector_says_native(detector):
    detector(AMX)
    assert native_bf16("cpu")
    assert resolve_precision("auto", "cpu") == ("bf16", "bf16: CPU has AMX/AVX512_BF16")


def test_the_environment_overrides_the_detector(detector, monkeypatch):
    detector(AMX)
    monkeypatch.setenv(devices.NATIVE_BF16_ENV, "0")
    assert resolve_precision("auto", "cpu") == ("fp32", "fp32: CPU emulates bf16 (VIXML_NATIVE_BF16=0)")
    detector(AVX2_ONLY)
    monkeypatch.setenv(devices.NATIVE_BF16_ENV, "1")
    assert resolve_precision("auto", torch.device("cpu"))[0] == "bf16"
    monkeypatch.setenv(devices.NATIVE_BF16_ENV, "maybe")
    with pytest.raises(ConfigError, match="VIXML_NATIVE_BF16"):
        native_bf16("cpu")


def test_forced_bf16_without_native_support_warns_once_with_the_cost(detector, caplog):
    detector(AVX2_ONLY)
    with caplog.at_level(logging.WARNING, logger="vixml.devices"):
        for _ in range(3):  # resolved at every step: one warning
            precision, reason = resolve_precision("bf16", "cpu")
    assert precision == "bf16" and "emulated" in reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "train.precision=bf16" in message and "8-9x slower than fp32" in message and "auto" in message


def test_forced_bf16_on_a_native_cpu_is_silent(detector, caplog):
    detector(AMX)
    with caplog.at_level(logging.WARNING, logger="vixml.devices"):
        assert resolve_precision("bf16", "cpu") == ("bf16", "bf16: asked for (train.precision)")
        assert resolve_precision("fp32", "cpu")[0] == "fp32"
    assert not caplog.records


def test_unknown_precision_names_the_setting():
    with pytest.raises(ConfigError, match=r"--precision fp8 is not a precision; valid: auto, fp32, bf16, fp16"):
        resolve_precision("fp8", "cpu", setting="--precision")


def test_autocast_and_scaler_resolve_auto_the_same_way(detector):
    detector(AVX2_ONLY)
    assert isinstance(autocast("auto", "cpu"), contextlib.nullcontext)
    detector(AMX)
    with autocast("auto", "cpu"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    assert not needs_grad_scaler("auto", "cpu") and needs_grad_scaler("fp16")


# --------------------------------------------------------------------------------------- detection
def test_cpuinfo_of_an_avx2_only_cpu(cpuinfo, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    found = cpuinfo(EPYC_AVX2)
    assert (found.model, found.flags, found.native_bf16, found.source) == (
        "AMD EPYC 7B12",
        ["AVX2"],
        False,
        "/proc/cpuinfo",
    )
    assert found.describe().startswith("AMD EPYC 7B12 (AVX2; torch kernels ")


def test_cpuinfo_of_an_amx_cpu_and_a_onednn_cap(cpuinfo, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    found = cpuinfo(XEON_AMX)
    assert found.flags == ["AVX2", "AVX-512", "AVX512_BF16", "AMX", "AMX-INT8"]
    assert found.native_bf16 and not found.limits
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # how the benchmarks emulate an AVX2-only CPU
    capped = cpuinfo(XEON_AMX)
    assert capped.amx and not capped.native_bf16 and capped.limits == ("ONEDNN_MAX_CPU_ISA=AVX2",)
    assert "limited by ONEDNN_MAX_CPU_ISA=AVX2" in capped.describe()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # a cap above bf16 leaves it native
    assert cpuinfo(XEON_AMX).native_bf16


def test_without_cpuinfo_torch_answers(cpuinfo):
    found = cpuinfo(None)  # macOS, Windows: torch's cpuinfo, or its ATen level (then bf16 = no)
    assert found.source == "torch" and found.model
    if found.native_bf16:
        assert found.avx512_bf16 or found.amx
    assert set(found.as_dict()) >= {"model", "flags", "native_bf16", "limits", "torch_kernels"}


# ------------------------------------------------------------------------------------------ devices
def test_cuda_without_cuda_is_a_config_error_naming_the_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"train\.device=cuda, but this machine has no CUDA device.*only cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="--device cuda:0, but .* use --device auto or cpu"):
        resolve_device("cuda:0", setting="--device")
    with pytest.raises(ConfigError, match="is not a device"):
        resolve_device("gpu")


def test_a_cuda_index_beyond_the_devices_lists_them(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="CUDA devices cuda:0, cuda:1"):
        resolve_device("cuda:2")


def test_the_trainer_refuses_cuda_without_cuda(tmp_path, monkeypatch, planted_data, tiny_bert):
    """`--set train.device=cuda` on a CPU machine: a ConfigError before anything is written, not a traceback."""
    from vixml.config import RunConfig, apply_overrides
    from vixml.training import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = apply_overrides(RunConfig(), ["train.device=cuda", f"model.name_or_path={tiny_bert}"])
    with pytest.raises(ConfigError, match=r"train\.device=cuda"):
        train(cfg, planted_data, tmp_path / "run")
    assert not (tmp_path / "run").exists()
