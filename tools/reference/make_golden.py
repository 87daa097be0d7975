#!/usr/bin/env python3
"""Write the golden files tests/golden/<case>/ (docs/FORMAT.md) from the PyTorch reference.

    python3 tools/reference/make_golden.py --out tests/golden

Each case: config.json + model.safetensors (F32 weights, random, seeded) + golden.safetensors
(tokens I32 + fp64 intermediates of form A computed from exactly those F32 weights).  The clamp
case also gets golden_formB.safetensors (tokens + fp64 logits of the factored form B).  Also
measures fp32 (CPU, CUDA) and bf16-autocast (CUDA) PyTorch logits against the fp64 ones, writes
manifest.json and README.md, and fails if the folder reaches 5 MB.
"""
import argparse
import copy
import datetime
import json
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sisa_ref as R  # noqa: E402

V = 97
CASES = [
    dict(name="sisa_ds16", seed=101, Bt=1, T=37, alpha_bias=(-3.0, -1.0),
         cfg=dict(d_model=128, n_heads=2, n_layers=2, d_ff=128, d_ssm=16),
         what="main case: d_s = 16 (the paper's best at 152M), 2 heads, 2 layers, odd T = 37"),
    dict(name="sisa_ds2_batch2", seed=202, Bt=2, T=12, alpha_bias=(-3.0, -1.0),
         cfg=dict(d_model=64, n_heads=1, n_layers=2, d_ff=64, d_ssm=2),
         what="smallest d_s (one rotation pair), a single head, batch of 2"),
    dict(name="transformer", seed=303, Bt=1, T=20, alpha_bias=None,
         cfg=dict(d_model=128, n_heads=2, n_layers=2, d_ff=64, d_ssm=0),
         what="the Transformer control (d_s = 0)"),
    dict(name="sisa_clamp", seed=404, Bt=2, T=48, alpha_bias=[0.5, -4.0],
         cfg=dict(d_model=128, n_heads=2, n_layers=1, d_ff=64, d_ssm=8),
         what="clamp active: head 0 decays fast (bias +0.5, max|g-c| ~ 22 > 11), head 1 slowly "
              "(bias -4, clamp inactive); batch of 2, so c per batch row matters; form B logits too"),
]
LIMIT = 5_000_000


def nerr(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if not torch.isfinite(a).all():
        return float("inf")
    return ((a - b).norm() / b.norm()).item()


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def run_case(c, out, cuda):
    cfg = R.SisaConfig(vocab_size=V, head_dim=64, max_seq_len=64, arch="sisa" if c["cfg"]["d_ssm"] else "transformer",
                       **c["cfg"])
    gen = torch.Generator().manual_seed(c["seed"])
    model = R.test_init(R.SisaModel(cfg), gen, c["alpha_bias"] or (-5.0, -5.0))
    tokens = torch.randint(0, V, (c["Bt"], c["T"]), generator=gen, dtype=torch.int32)
    cdir = os.path.join(out, c["name"])
    R.save_model_dir(cdir, model, torch.float32)

    m64 = R.load_model_dir(cdir, torch.float64)        # exactly what was written
    with torch.no_grad():
        logits, it = m64(tokens, return_intermediates=True)
    gold = {"tokens": tokens}
    gold.update({k: v.detach().double().contiguous() for k, v in it.items()})
    meta = {"generator": "tools/reference/make_golden.py", "case": c["name"], "torch": torch.__version__}
    gp = os.path.join(cdir, "golden.safetensors")
    R.save_safetensors(gp, gold, meta)
    back, _ = R.load_safetensors(gp)
    assert set(back) == set(gold) and all(torch.equal(back[k], gold[k]) for k in gold)
    try:
        import safetensors.torch as st
        theirs = st.load_file(gp)
        assert all(torch.equal(theirs[k], gold[k]) for k in gold)
        theirs = st.load_file(os.path.join(cdir, "model.safetensors"))
        assert all(torch.equal(theirs[k], v) for k, v in model.state_dict().items())
    except ImportError:
        pass

    r = dict(name=c["name"], what=c["what"], seed=c["seed"], Bt=c["Bt"], T=c["T"], config=cfg.to_dict(),
             alpha_bias=c["alpha_bias"], tensors=len(gold))
    if cfg.d_ssm:
        per_head = []
        for i in range(cfg.n_layers):
            g = it[f"layers.{i}.g"]
            cc = (g.amax(-1, keepdim=True) + g.amin(-1, keepdim=True)) / 2
            per_head.append([round(v, 4) for v in (g - cc).abs().amax(-1).amax(0).tolist()])
        r["clamp_max_abs_u"] = [round(v, 4) for v in it["clamp_max_abs_u"].tolist()]
        r["max_abs_u_per_head"] = per_head
        flat = [v for row in per_head for v in row]
        if c["name"] == "sisa_clamp":
            assert max(flat) > cfg.ssm_clamp and min(flat) < cfg.ssm_clamp, per_head
        else:
            assert max(flat) < cfg.ssm_clamp, per_head
        with torch.no_grad():
            lb = m64(tokens, form="B")
            r["formB_vs_formA"] = nerr(lb, logits)
            if c["name"] == "sisa_clamp":
                R.save_safetensors(os.path.join(cdir, "golden_formB.safetensors"),
                                   {"tokens": tokens, "logits": lb.double()}, {**meta, "form": "B"})
            m0 = copy.deepcopy(m64)
            for L in m0.layers:
                L.lambda_raw.data.fill_(-1e4)          # lambda = softplus(-1e4) = 0: no SSM term
            r["ssm_effect_on_logits"] = nerr(m0(tokens), logits) * 1.0
            r["lambda"] = [[round(v, 4) for v in R.softplus(L.lambda_raw).tolist()] for L in m64.layers]

    # fp32 / bf16 PyTorch vs the fp64 reference
    m32 = R.load_model_dir(cdir, torch.float32)
    with torch.no_grad():
        l32, it32 = m32(tokens, return_intermediates=True)
        errs = {k: nerr(it32[k], it[k]) for k in it if k != "clamp_max_abs_u"}
        worst = max(errs, key=errs.get)
        r["fp32_cpu"] = errs["logits"]
        r["fp32_cpu_worst_intermediate"] = [worst, errs[worst]]
        if cfg.d_ssm:
            r["fp32_cpu_clamp_abs_err"] = (it32["clamp_max_abs_u"].double() - it["clamp_max_abs_u"]).abs().max().item()
        if cuda:
            mg, tg = m32.cuda(), tokens.cuda()
            r["fp32_cuda"] = nerr(mg(tg), logits)
            r["fp32_cuda_torch_sdpa"] = nerr(mg(tg, sdpa="torch"), logits)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                r["bf16_cuda"] = nerr(mg(tg), logits)
                r["bf16_cuda_torch_sdpa"] = nerr(mg(tg, sdpa="torch"), logits)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                r["bf16_cpu"] = nerr(m32(tokens), logits)
    r["bytes"] = dir_bytes(cdir)
    return r


def fmt(x):
    return "-" if x is None else (f"{x:.1e}" if isinstance(x, float) else str(x))


def write_readme(out, results, argv, dev):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = ["# Golden files (tests/golden)", "",
         "Generated by the PyTorch reference (tools/reference/sisa_ref.py, written from SISA.md) with",
         "", f"    python3 tools/reference/make_golden.py {' '.join(argv)}", "",
         f"run from the repository root on {now}, torch {torch.__version__}, python {platform.python_version()}, "
         f"{dev}.  Regenerating with the same torch gives the same weights and tokens (seeded CPU generator); the "
         "fp64 values may differ in the last bits with another BLAS.", "",
         "Each `<case>/` is a model directory (docs/FORMAT.md: config.json + model.safetensors, F32 weights) plus",
         "`golden.safetensors`: `tokens` (I32, (Bt, T)) and the fp64 form-A forward of exactly those F32 weights",
         "(cast to fp64; explicit matmul + causal mask + softmax attention) under the names of docs/FORMAT.md.",
         "`sisa_clamp/golden_formB.safetensors` adds `tokens` and `logits` (F64) of the factored form B (SISA.md §2,",
         "no c, no clamp), which is what a KV-cache decode must reproduce; there A and B differ.", "",
         "Weights: SISA.md §6 init, then (sisa_ref.test_init) made more discriminating: norm weights 1 + 0.1·N(0,1)",
         "(a missing norm weight shows), W_Q/W_K/W_B/W_C N(0, 0.05), theta_proj N(0, 0.03) (visible rotation),",
         "lambda_raw U(-1, 1) per head (lambda 0.31..1.31), alpha_proj.bias U(-3, -1) per head (faster decay than",
         "§6's -5, still clamp-free at these T) or the per-head list given below.  Note the sign: a MORE negative",
         "bias means SLOWER decay (log alpha = -softplus(.)), so an active clamp (max|g-c| = (max g - min g)/2 > 11)",
         "at T = 48 needs a bias near or above 0; bias -3 would need T ~ 460, far over the size budget.", "",
         "## Cases", "",
         "| case | arch | d / H / L | d_s | d_ff | Bt x T | seed | alpha bias | max abs(g-c) per layer [per head] | SSM effect on logits | bytes |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["config"]
        L.append(f"| {r['name']} | {c['arch']} | {c['d_model']} / {c['n_heads']} / {c['n_layers']} | {c['d_ssm']} | "
                 f"{c['d_ff']} | {r['Bt']} x {r['T']} | {r['seed']} | {r['alpha_bias'] if c['d_ssm'] else '-'} | "
                 f"{r.get('clamp_max_abs_u', '-')} {r.get('max_abs_u_per_head', '')} | "
                 f"{fmt(r.get('ssm_effect_on_logits'))} | {r['bytes']:,} |")
    L += ["", "All: vocab 97, head_dim 64, max_seq_len 64, defaults for eps (1e-6), RoPE base (1e4), clamp (11).",
          "'SSM effect' = ||logits - logits(lambda = 0)|| / ||logits||.  Cases:", ""]
    L += [f"- {r['name']}: {r['what']}." for r in results]
    L += ["", "## Measured: PyTorch paths vs the fp64 golden (normalised error ||a-b||/||b|| of the logits)", "",
          "| case | fp32 CPU | fp32 CPU worst intermediate | fp32 CUDA | fp32 CUDA torch-SDPA | bf16 autocast CUDA | bf16 autocast CUDA torch-SDPA | form B vs A (fp64) |",
          "|---|---|---|---|---|---|---|---|"]
    for r in results:
        w = r["fp32_cpu_worst_intermediate"]
        L.append(f"| {r['name']} | {fmt(r['fp32_cpu'])} | {w[0]} {fmt(w[1])} | {fmt(r.get('fp32_cuda'))} | "
                 f"{fmt(r.get('fp32_cuda_torch_sdpa'))} | {fmt(r.get('bf16_cuda', r.get('bf16_cpu')))} | "
                 f"{fmt(r.get('bf16_cuda_torch_sdpa'))} | {fmt(r.get('formB_vs_formA'))} |")
    L += ["", "(TF32 off.  bf16 autocast: fp32 weights, bf16 matmul inputs, SSM math in fp32, Qhat/Khat stored bf16,",
          "fp32 accumulation in the explicit attention.)", "",
          "## Tolerances for a C test (engine vs these fp64 values, normalised error per tensor)", "",
          "- f32 engine path: logits <= 1e-5 (the fp32 PyTorch paths measure a few 1e-7, see above); every intermediate",
          "  <= 1e-5 as well (the SSM ones carry the f32 prefix-sum error of g times exp(+-u): worst 1.6e-6 here,",
          "  growing with T and max|g|); clamp_max_abs_u: absolute error <= 1e-4; tokens must match exactly.",
          "- bf16 storage / bf16 GEMMs: logits <= 5e-2 (the bf16 autocast paths above measure a few 1e-3).",
          "- f16: <= 1e-2.  tf32: <= 5e-3.  NaN/Inf never passes.",
          "- sisa_clamp: a full-sequence (form A) forward must match golden.safetensors and report the clamp as",
          "  active; a KV-cache decode (form B) must match golden_formB.safetensors instead.", ""]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(L))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/golden")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cuda = torch.cuda.is_available()
    dev = f"CUDA device {torch.cuda.get_device_name(0)}" if cuda else "CPU only"
    os.makedirs(a.out, exist_ok=True)
    results = [run_case(c, a.out, cuda) for c in CASES]
    write_readme(a.out, results, sys.argv[1:], dev)
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"generator": "tools/reference/make_golden.py", "torch": torch.__version__, "device": dev,
                   "cases": results}, f, indent=1)
        f.write("\n")
    total = dir_bytes(a.out)
    for r in results:
        print(f"{r['name']:16s} bytes {r['bytes']:9,}  fp32cpu {fmt(r['fp32_cpu'])}  "
              f"fp32cuda {fmt(r.get('fp32_cuda'))}  bf16 {fmt(r.get('bf16_cuda', r.get('bf16_cpu')))}  "
              f"bf16sdpa {fmt(r.get('bf16_cuda_torch_sdpa'))}  B-vs-A {fmt(r.get('formB_vs_formA'))}  "
              f"clamp {r.get('clamp_max_abs_u', '-')} per-head {r.get('max_abs_u_per_head', '-')}  "
              f"ssm-effect {fmt(r.get('ssm_effect_on_logits'))}  worst32 {r['fp32_cpu_worst_intermediate']}")
    print(f"total {total:,} bytes in {a.out}")
    if total >= LIMIT:
        print("ERROR: golden folder is over 5 MB")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
