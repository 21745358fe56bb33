"""Which compute path this machine takes: precision, activation layout, threads.

One place decides, from what the CPU (or GPU) offers, how every network in ArtSeg runs:

- **precision**: bf16 autocast where the hardware has native bf16 matrix instructions and
  PyTorch is allowed to use them (AVX-512 BF16 or AMX on x86-64, a bf16-capable CUDA device);
  fp32 everywhere else (AVX2-only x86-64, aarch64, ...).
- **layout**: channels_last where oneDNN runs its AVX-512 (or newer) kernels, in bf16 and fp32
  alike (1.1-1.6x faster fp32 training there, ``benchmarks/bench_unet.py``); the default
  (contiguous) layout everywhere else. On the AVX2 path, oneDNN's fp32 convolution
  backward-weights in channels_last corrupts the heap (``munmap_chunk(): invalid pointer`` in
  ``dnnl_primitive::~dnnl_primitive``): there only the contiguous layout is safe
  (``benchmarks/RESULTS.md``: "Compute path"). Forward-only passes (prediction, Score-CAM)
  take channels_last there too (:func:`inference_memory_format`): oneDNN's AVX2 forward
  convolutions are safe in it and run 1.5-1.95x faster once the weights share the layout.

``ATEN_CPU_CAPABILITY=avx2`` (with ``ONEDNN_MAX_CPU_ISA=AVX2``) makes a bigger CPU take the
AVX2 path in full, precision included, so that path can be exercised on any machine.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which its bf16 kernels are native
_ONEDNN_BF16_ISAS = ("ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                     "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512",
                     "AVX10_2_512_AMX_2")


def cpu_capability() -> str:
    """The vector instruction set ATen dispatches to (``torch.backends.cpu.get_cpu_capability()``).

    ``"AVX512"``, ``"AVX2"``, ``"DEFAULT"`` (e.g. aarch64 without SVE), ... It honours
    ``ATEN_CPU_CAPABILITY``.
    """
    return torch.backends.cpu.get_cpu_capability()


def _onednn_cap() -> str:
    return os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()


def onednn_runs_avx512() -> bool:
    """Whether ATen and oneDNN both dispatch to AVX-512 (or newer) kernels on this CPU."""
    cap = _onednn_cap()
    uncapped = cap in ("ALL", "DEFAULT") or cap.startswith(("AVX512", "AVX10"))
    return torch.backends.mkldnn.is_available() and cpu_capability() == "AVX512" and uncapped


def cpu_has_fast_bf16() -> bool:
    """Whether networks on this CPU should run in bf16 autocast.

    True when the CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX), ATen
    dispatches to AVX-512 kernels (not capped by ``ATEN_CPU_CAPABILITY``) and oneDNN is not
    capped below its bf16 kernels (``ONEDNN_MAX_CPU_ISA``).
    """
    if not onednn_runs_avx512() or _onednn_cap() not in _ONEDNN_BF16_ISAS:
        return False
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str = "auto", device_type: str = "cpu") -> str:
    """Return the concrete precision, ``"bf16"`` or ``"fp32"``.

    Parameters
    ----------
    precision : {"auto", "bf16", "fp32"}
        ``"auto"`` picks bf16 on CUDA devices that support it and on CPUs where
        :func:`cpu_has_fast_bf16` holds, fp32 otherwise.
    device_type : str
        ``"cpu"`` or ``"cuda"``.

    Examples
    --------
    >>> resolve_precision("fp32")
    'fp32'
    """
    from artseg.errors import ArtsegInputError

    if precision in ("bf16", "fp32"):
        return precision
    if precision != "auto":
        raise ArtsegInputError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def memory_format_for(precision: str, device_type: str = "cpu") -> torch.memory_format:
    """Activation layout: channels_last with bf16 and on oneDNN's AVX-512 path, else contiguous.

    Examples
    --------
    >>> memory_format_for("bf16")
    torch.channels_last
    """
    if resolve_precision(precision, device_type) == "bf16":
        return torch.channels_last
    if device_type == "cpu" and onednn_runs_avx512():
        return torch.channels_last
    return torch.contiguous_format


def inference_memory_format(precision: str, device_type: str = "cpu") -> torch.memory_format:
    """Layout of forward-only passes: :func:`memory_format_for`'s, and channels_last on oneDNN's AVX2 path.

    Only the backward-weights convolution corrupts memory in channels_last on the AVX2 path;
    its forward convolutions are safe (``tests/test_hardware.py`` runs them with glibc's heap
    checks) and faster, so prediction and Score-CAM use channels_last on every x86-64 CPU
    oneDNN serves. Elsewhere (aarch64, CPUs below AVX2) the contiguous layout stays.

    Examples
    --------
    >>> inference_memory_format("bf16")
    torch.channels_last
    """
    if memory_format_for(precision, device_type) == torch.channels_last:
        return torch.channels_last
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if device_type == "cpu" and x86 and torch.backends.mkldnn.is_available() and cpu_capability() in ("AVX2", "AVX512"):
        return torch.channels_last
    return torch.contiguous_format


@contextmanager
def inference_layout(model: torch.nn.Module, memory_format: torch.memory_format) -> Iterator[torch.nn.Module]:
    """Hold ``model``'s 4-D weights in ``memory_format`` for the context, contiguous again after.

    oneDNN runs its fast channels_last kernels only when the weights share the activations'
    layout (weights left contiguous cost the whole gain); models are trained, saved and
    fingerprinted contiguous, so they go back to it. Threads sharing one model stay correct
    (every layout computes the same values) but may run some passes in the slow layout: give
    each worker one thread, as `--workers N` does.
    """
    if memory_format == torch.contiguous_format:
        yield model
        return
    model.to(memory_format=memory_format)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def describe(precision: str = "auto") -> dict[str, str | int]:
    """What this machine will run with: torch, CPU capability, precision, layout, threads.

    Returns
    -------
    dict
        ``torch``, ``machine``, ``cpu``, ``cpu_capability``, ``native_bf16``,
        ``precision``, ``layout`` (training), ``inference_layout``, ``threads``.
    """
    resolved = resolve_precision(precision)
    layout = "channels_last" if memory_format_for(resolved) == torch.channels_last else "contiguous"
    inference = "channels_last" if inference_memory_format(resolved) == torch.channels_last else "contiguous"
    return {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": cpu_model_name(),
        "cpu_capability": cpu_capability(),
        "native_bf16": str(cpu_has_fast_bf16()),
        "precision": resolved,
        "layout": layout,
        "inference_layout": inference,
        "threads": torch.get_num_threads(),
    }


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.lower().startswith(("model name", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
