"""CPU facts for torch: whether the CPU computes bf16 natively (the free-core count is
nicegan.common.cpu_threads)."""
from __future__ import annotations


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: without either, torch emulates bf16 matmuls and convolutions, and bf16
    autocast made a ch-32 training step 15x slower than fp32 at 128 px on an AVX2-only AMD EPYC
    (docs/BENCHMARKS.md)."""
    import torch
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)
