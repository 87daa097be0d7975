#!/usr/bin/env python3
"""PyTorch eager baseline for the engine's prefill benchmark: the reference model
(tools/reference/sisa_ref.py) in bf16 weights + bf16 autocast with torch's SDPA, random init,
a (batch, T) forward to logits, timed with CUDA events (median of reps after warm-up).

    python3 tools/bench/torch_prefill.py --scale 152m --ds 16 --batch 8 --tokens 2048

Prints one markdown table row per model; the engine's numbers come from `sisa bench` in the
same run (tools/bench/gpu_all.sh)."""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import sisa_ref  # noqa: E402

SCALES = {"50m": (512, 8, 6, 2048), "152m": (768, 12, 12, 3072), "369m": (1024, 16, 24, 2944)}
DFF = {("50m", 16): 1939, ("50m", 32): 1832, ("50m", 64): 1619, ("50m", 128): 1192,
       ("152m", 16): 2908, ("152m", 32): 2748, ("152m", 64): 2428, ("152m", 128): 1788,
       ("369m", 16): 2725, ("369m", 32): 2512, ("369m", 64): 2085, ("369m", 128): 1232}


def config(scale, ds):
    d, H, L, dff_t = SCALES[scale]
    return sisa_ref.SisaConfig(vocab_size=50277, d_model=d, n_heads=H, n_layers=L,
                               d_ff=DFF[(scale, ds)] if ds else dff_t, d_ssm=ds,
                               arch="sisa" if ds else "transformer")


def bench(cfg, batch, T, reps):
    torch.manual_seed(0)
    model = sisa_ref.SisaModel(cfg)
    sisa_ref.init_weights(model)
    model = sisa_ref.cast_weights(model, torch.bfloat16).cuda().eval()
    tokens = torch.randint(0, cfg.vocab_size, (batch, T), device="cuda")
    times = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for i in range(reps + 2):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            model(tokens, sdpa="torch")
            b.record()
            torch.cuda.synchronize()
            if i >= 2:
                times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="152m")
    ap.add_argument("--ds", type=int, nargs="+", default=[16, 0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    print(f"| model | PyTorch {torch.__version__} eager bf16 | batch | T | median s | tokens/s |")
    print("|---|---|---|---|---|---|")
    for ds in a.ds:
        t = bench(config(a.scale, ds), a.batch, a.tokens, a.reps)
        name = f"SISA-{a.scale} d_s={ds}" if ds else f"Transformer-{a.scale}"
        print(f"| {name} | {torch.cuda.get_device_name()} | {a.batch} | {a.tokens} | {t:.4f} | "
              f"{a.batch * a.tokens / t:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
