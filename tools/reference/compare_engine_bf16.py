#!/usr/bin/env python3
"""Engine bf16 vs reference bf16 autocast, both against the fp64 golden logits.

For each golden case: the model's weights rounded to bf16 (lambda_raw stays f32) are written to a
temporary model dir; the engine (libsisa through ctypes, backend cpu, compute_dtype bf16: bf16
weights and bf16 activations) and the PyTorch reference (bf16 weights, torch.autocast bf16, as the
authors trained) each run the golden tokens; the table gives the normalised logit errors
||a - b|| / ||b|| of each against the fp64 golden logits and against each other.

    python3 tools/reference/compare_engine_bf16.py BUILDDIR/libsisa.so tests/golden
"""
import ctypes
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(__file__))
import sisa_ref  # noqa: E402


class LoadOptions(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_char_p), ("device", ctypes.c_int), ("allow_fallback", ctypes.c_int),
                ("max_batch", ctypes.c_int), ("max_tokens", ctypes.c_int), ("compute_dtype", ctypes.c_int),
                ("profile", ctypes.c_int)]


def engine_logits(lib, model_dir, tokens, vocab, backend=b"cpu"):
    Bt, T = tokens.shape
    opts = LoadOptions(backend, 0, 0, Bt, T, 2, 0)  # 2 = SISA_DTYPE_BF16
    m = ctypes.c_void_p()
    if lib.sisa_model_load(model_dir.encode(), ctypes.byref(opts), ctypes.byref(m)) != 0:
        raise RuntimeError(lib.sisa_last_error().decode())
    ids = (ctypes.c_int32 * tokens.numel())(*tokens.flatten().tolist())
    out = (ctypes.c_float * (tokens.numel() * vocab))()
    st = lib.sisa_model_forward(m, ids, Bt, T, out, None)
    lib.sisa_model_free(m)
    if st != 0:
        raise RuntimeError(lib.sisa_last_error().decode())
    return torch.tensor(list(out), dtype=torch.float64).view(Bt, T, vocab)


def nerr(a, b):
    return float((a - b).norm() / b.norm())


def main():
    lib = ctypes.CDLL(sys.argv[1])
    lib.sisa_last_error.restype = ctypes.c_char_p
    root = sys.argv[2]
    print(f"torch {torch.__version__}; engine: backend cpu, bf16 weights + bf16 activations")
    print("| case | engine bf16 vs fp64 | reference bf16 autocast vs fp64 | engine vs reference |")
    print("|---|---|---|---|")
    for case in sorted(os.listdir(root)):
        d = os.path.join(root, case)
        if not os.path.exists(os.path.join(d, "golden.safetensors")):
            continue
        gold, _ = sisa_ref.load_safetensors(os.path.join(d, "golden.safetensors"))
        tokens, ref64 = gold["tokens"].long(), gold["logits"].double()
        model = sisa_ref.load_model_dir(d, dtype=torch.float32)
        with tempfile.TemporaryDirectory() as tmp:
            sisa_ref.save_model_dir(tmp, model, dtype=torch.bfloat16)
            eng = engine_logits(lib, tmp, tokens, model.cfg.vocab_size)
            ref_model = sisa_ref.load_model_dir(tmp, dtype=torch.bfloat16)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            rb = ref_model(tokens).double()
        print(f"| {case} | {nerr(eng, ref64):.2e} | {nerr(rb, ref64):.2e} | {nerr(eng, rb):.2e} |")


if __name__ == "__main__":
    main()
