#!/usr/bin/env python3
"""torch_ref.py — the reference numbers bench_opencl is compared with, on the same GPU and run.

Same shapes and FLOP counts as tools/bench/bench_opencl.c, in PyTorch/CUDA:
  MATMUL  y = x @ W.T, f32 with TF32 OFF (cuBLAS SGEMM: the like-for-like comparison to CLBlast
          SGEMM), plus the TF32 number for context.
  SDPA    f32, causal, scale 1/sqrt(64), B=8 H=12; d_qk 80 / d_v 64 (SISA d_s=16, form A) and
          64/64, T = 2048, 4096, through the fastest PyTorch kernel that accepts the case
          (memory-efficient, else math), which is named in the row.
  --dtype bf16: bench_opencl --dtype bf16's rows instead: MATMUL bf16 in, bf16 out (cuBLAS,
          f32 accumulation), with the padded FFN width 2944 too; SDPA bf16 with d_qk 80, 96 (the
          model's padded Qhat) and 64, through the fastest backend that accepts the case
          (cuDNN, flash, memory-efficient, math), named in the row.
Timing: CUDA events, one warm-up, then runs for >= 0.5 s (at least 3); best and mean in ms.
Usage: python torch_ref.py [--quick] [--dtype bf16]
"""
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn):
    fn()
    torch.cuda.synchronize()
    times = []
    t_end = time.time() + 0.5
    while len(times) < 3 or (time.time() < t_end and len(times) < 200):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return min(times), sum(times) / len(times), len(times)


def row(op, shape, what, flop, t):
    best, mean, n = t
    print("%-10s %-38s %-16s %9.3f %9.3f %8.2f %4d" % (op, shape, what, best, mean,
                                                         flop / (best * 1e-3) * 1e-12, n), flush=True)


def main_bf16(quick):
    dev, bf = "cuda", torch.bfloat16
    M = 512 if quick else 8 * 2048
    for (N, K) in [(768, 768), (2908, 768), (768, 2908), (2944, 768), (768, 2944),
                   (4096 if quick else 50277, 768)]:
        x = torch.randn(M, K, device=dev, dtype=bf)
        w = torch.randn(N, K, device=dev, dtype=bf)
        row("MATMUL", "M=%d N=%d K=%d bf16" % (M, N, K), "cublas-bf16", 2.0 * M * N * K,
            timed(lambda: x @ w.t()))
        del x, w
    B, H = (1, 12) if quick else (8, 12)
    for T in ((256, 512) if quick else (2048, 4096)):
        for dqk, dv in ((80, 64), (96, 64), (64, 64)):
            q = torch.randn(B, H, T, dqk, device=dev, dtype=bf)
            k = torch.randn(B, H, T, dqk, device=dev, dtype=bf)
            v = torch.randn(B, H, T, dv, device=dev, dtype=bf)
            flop = 2.0 * B * H * (T * (T + 1) / 2) * (dqk + dv)
            shape = "B=%d H=%d T=%d d_qk=%d d_v=%d bf16" % (B, H, T, dqk, dv)
            for name, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                             ("mem-efficient", SDPBackend.EFFICIENT_ATTENTION),
                             ("math", SDPBackend.MATH)):
                try:
                    with sdpa_kernel(be):
                        t = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                         scale=0.125))
                    row("SDPA", shape, name, flop, t)
                    break
                except RuntimeError as err:
                    print("# %s %s: %s" % (shape, name, str(err).splitlines()[0][:100]))
            del q, k, v
            torch.cuda.empty_cache()


def main():
    quick = "--quick" in sys.argv
    dev = "cuda"
    print("torch %s, %s" % (torch.__version__, torch.cuda.get_device_name(0)))
    print("%-10s %-38s %-16s %9s %9s %8s %4s" % ("op", "shape", "backend", "best ms", "mean ms",
                                                 "TFLOP/s", "runs"))
    if "bf16" in sys.argv:
        return main_bf16(quick)
    M = 512 if quick else 8 * 2048
    for (N, K) in [(768, 768), (2908, 768), (768, 2908), (4096 if quick else 50277, 768)]:
        x = torch.randn(M, K, device=dev)
        w = torch.randn(N, K, device=dev)
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            t = timed(lambda: x @ w.t())
            row("MATMUL", "M=%d N=%d K=%d f32" % (M, N, K), "cublas-tf32" if tf32 else "cublas-f32",
                2.0 * M * N * K, t)
        del x, w
    torch.backends.cuda.matmul.allow_tf32 = False
    B, H = (1, 12) if quick else (8, 12)
    for T in ((256, 512) if quick else (2048, 4096)):
        for dqk, dv in ((80, 64), (64, 64)):
            q = torch.randn(B, H, T, dqk, device=dev)
            k = torch.randn(B, H, T, dqk, device=dev)
            v = torch.randn(B, H, T, dv, device=dev)
            flop = 2.0 * B * H * (T * (T + 1) / 2) * (dqk + dv)
            shape = "B=%d H=%d T=%d d_qk=%d d_v=%d" % (B, H, T, dqk, dv)
            for name, be in (("mem-efficient", SDPBackend.EFFICIENT_ATTENTION),
                             ("math", SDPBackend.MATH)):
                try:
                    with sdpa_kernel(be):
                        t = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                         scale=0.125))
                    row("SDPA", shape, name, flop, t)
                    break
                except RuntimeError as err:
                    print("# %s %s: %s" % (shape, name, str(err).splitlines()[0][:100]))
            del q, k, v
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
