#!/usr/bin/env python3
"""Convert an authors' SISA checkpoint (SISA.md §5) to the engine's model dir (docs/FORMAT.md).

    python3 convert_checkpoint.py final.pt --out DIR [--head-dim 64] [--dtype keep|f32|bf16|f16]
                                  [--max-seq-len 2048] [--eos-token-id N] [--tokenizer tokenizer.json]

Input: torch.save'd dict whose "model" entry is the state dict (a bare state dict is accepted
too); keys may carry `_orig_mod.` (torch.compile).  L, d, H = d / head_dim, d_s, d_ff and the
vocabulary are inferred from the shapes; anything inconsistent is refused with a message naming
the tensors.  Dtypes are kept (bf16 stays bf16) unless --dtype says otherwise; lambda_raw is
always written as F32 (F64 weights, not allowed by the format, become F32).
"""
import argparse
import os
import re
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sisa_ref  # noqa: E402

PREFIX = "_orig_mod."
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


class ConvertError(Exception):
    pass


def load_state_dict(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"{path}: cannot load with torch.load(weights_only=True): {e}")
    sd = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise ConvertError(f"{path}: expected a dict with the state dict under 'model'")
    out = {}
    for k, v in sd.items():
        while k.startswith(PREFIX):
            k = k[len(PREFIX):]
        if not torch.is_tensor(v):
            raise ConvertError(f"entry {k} is not a tensor ({type(v).__name__})")
        if k in out:
            raise ConvertError(f"tensor {k} appears twice (with and without {PREFIX})")
        out[k] = v
    return out


def infer_config(sd, head_dim=64, max_seq_len=2048, eos_token_id=None):
    def shape(k):
        if k not in sd:
            raise ConvertError(f"missing tensor {k}")
        return tuple(sd[k].shape)

    emb = shape("embed.weight")
    if len(emb) != 2:
        raise ConvertError(f"embed.weight has shape {emb}, expected (vocab, d)")
    V, d = emb
    if head_dim <= 0 or d % head_dim:
        raise ConvertError(f"d_model {d} (from embed.weight) is not divisible by head_dim {head_dim}"
                           " (set --head-dim)")
    H = d // head_dim
    idx = {int(m.group(1)) for k in sd for m in [re.match(r"layers\.(\d+)\.", k)] if m}
    if not idx:
        raise ConvertError("no layers.{i}.* tensors")
    L = max(idx) + 1
    if idx != set(range(L)):
        raise ConvertError(f"layer indices are not 0..{L - 1}: missing {sorted(set(range(L)) - idx)}")
    sisa = [f"layers.{i}.W_B.weight" in sd for i in range(L)]
    if any(sisa) and not all(sisa):
        raise ConvertError(f"W_B present in layers {[i for i in range(L) if sisa[i]]} only")
    ds = 0
    if all(sisa):
        lam = shape("layers.0.lambda_raw")
        if lam != (H,):
            raise ConvertError(f"layers.0.lambda_raw has shape {lam} but d_model {d} / head_dim {head_dim}"
                               f" = {H} heads (set --head-dim {d // lam[0] if lam and lam[0] else '?'}?)")
        rows = shape("layers.0.W_B.weight")[0]
        if rows % H:
            raise ConvertError(f"layers.0.W_B.weight has {rows} rows, not a multiple of H = {H}")
        ds = rows // H
        if ds % 2 or ds == 0:
            raise ConvertError(f"d_s = {ds} (from layers.0.W_B.weight rows {rows} / H {H}) must be even and > 0")
    d_ff = shape("layers.0.ffn.w_gate.weight")[0]
    if eos_token_id is None:
        eos_token_id = 0 if V == 50277 else -1   # GPT-NeoX-20B tokenizer: <|endoftext|> = 0
    try:
        cfg = sisa_ref.SisaConfig(vocab_size=V, d_model=d, n_heads=H, head_dim=head_dim, n_layers=L,
                                  d_ssm=ds, d_ff=d_ff, arch="sisa" if ds else "transformer",
                                  max_seq_len=max_seq_len, eos_token_id=eos_token_id)
    except ValueError as e:
        raise ConvertError(str(e))
    return cfg


def convert(ckpt, out, head_dim=64, dtype="keep", max_seq_len=2048, eos_token_id=None, tokenizer=None,
            quiet=False):
    sd = load_state_dict(ckpt)
    cfg = infer_config(sd, head_dim, max_seq_len, eos_token_id)
    exp = sisa_ref.expected_shapes(cfg)
    errs = [f"missing tensor {k}" for k in exp if k not in sd]
    errs += [f"unexpected tensor {k}" for k in sd if k not in exp]
    errs += [f"tensor {k}: shape {tuple(sd[k].shape)}, expected {s}" for k, s in exp.items()
             if k in sd and tuple(sd[k].shape) != s]
    if errs:
        more = f" (and {len(errs) - 20} more)" if len(errs) > 20 else ""
        raise ConvertError("inconsistent checkpoint: " + "; ".join(errs[:20]) + more)
    notes = []
    conv = {}
    for k, v in sd.items():
        if not v.is_floating_point():
            raise ConvertError(f"tensor {k}: dtype {v.dtype} is not floating point")
        if not torch.isfinite(v.float()).all():
            raise ConvertError(f"tensor {k}: NaN or Inf")
        if k.endswith("lambda_raw"):
            if v.dtype != torch.float32:
                notes.append(f"{k}: {v.dtype} -> float32")
            conv[k] = v.float()
        elif dtype != "keep":
            conv[k] = v.to(DTYPES[dtype])
        elif v.dtype == torch.float64:
            notes.append(f"{k}: float64 -> float32")
            conv[k] = v.float()
        else:
            conv[k] = v
    try:
        sisa_ref.save_state_dict_dir(out, cfg, conv)
    except ValueError as e:
        raise ConvertError(str(e))
    if tokenizer:
        shutil.copyfile(tokenizer, os.path.join(out, "tokenizer.json"))
    if not quiet:
        n = sum(v.numel() for v in conv.values())
        dts = {}
        for v in conv.values():
            dts[str(v.dtype).replace("torch.", "")] = dts.get(str(v.dtype).replace("torch.", ""), 0) + v.numel()
        print(f"{ckpt} -> {out}")
        print(f"  arch {cfg.arch}: vocab {cfg.vocab_size}, d {cfg.d_model}, H {cfg.n_heads} x d_h "
              f"{cfg.head_dim}, L {cfg.n_layers}, d_s {cfg.d_ssm}, d_ff {cfg.d_ff}, "
              f"max_seq_len {cfg.max_seq_len}, eos {cfg.eos_token_id}")
        print(f"  params {n:,}  dtypes " + ", ".join(f"{k} {v:,}" for k, v in dts.items()))
        if cfg.d_ssm:
            ssm = sum(conv[k].numel() for k in conv if k.startswith("layers.0.") and
                      any(s in k for s in ("W_B", "W_C", "alpha_proj", "theta_proj", "lambda_raw")))
            print(f"  SSM params per layer {ssm:,}")
            for i in range(cfg.n_layers):
                lam = sisa_ref.softplus(conv[f"layers.{i}.lambda_raw"].double())
                print(f"  layer {i:2d} lambda = softplus(lambda_raw): " + " ".join(f"{x:.4f}" for x in lam.tolist()))
        for s in notes[:10]:
            print("  note:", s)
        if len(notes) > 10:
            print(f"  note: ... {len(notes) - 10} more dtype changes")
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--dtype", default="keep", choices=["keep", "f32", "bf16", "f16"])
    ap.add_argument("--max-seq-len", type=int, default=2048)
    ap.add_argument("--eos-token-id", type=int, default=None,
                    help="default: 0 for vocab 50277 (GPT-NeoX-20B), else -1 (none)")
    ap.add_argument("--tokenizer", help="tokenizer.json to copy into the model dir")
    a = ap.parse_args(argv)
    try:
        convert(a.checkpoint, a.out, a.head_dim, a.dtype, a.max_seq_len, a.eos_token_id, a.tokenizer)
    except ConvertError as e:
        print(f"convert_checkpoint: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
