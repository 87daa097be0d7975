#!/usr/bin/env python3
"""Train the shipped demo model (models/demo, docs/DEMO_MODEL.md) in one go on one GPU.

    python3 tools/train/train_demo.py --corpus demo_corpus/corpus.txt --out $OUT [--budget-s 330]

(a) byte-level BPE tokenizer (Hugging Face `tokenizers`, GPT-2 ByteLevel pre-tokenizer,
    <|endoftext|> = id 0) trained on the corpus;
(b) a small SISA (tools/reference/sisa_ref.py) trained with SISA.md §6's AdamW recipe
    (lambda_raw: lr/10, no decay; clip 1.0; warmup + cosine to 0) under bf16 autocast, for as
    many steps as fit in --budget-s seconds of training (steps fixed after measuring speed);
(c) builds WORKDIR/demo/ (config.json, model.safetensors, tokenizer.json, loss.png,
    train_log.txt, samples.txt) and writes OUT/demo_model.tar of it (plus copies of the log,
    samples and plot in OUT).
"""
import argparse
import json
import math
import os
import random
import sys
import tarfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import sisa_ref  # noqa: E402

EOT = "<|endoftext|>"
T0 = time.time()
LOG = []


def log(msg):
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    LOG.append(line)


# ----------------------------------------------------------------------------- tokenizer

def train_tokenizer(docs, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    assert tok.token_to_id(EOT) == 0, "<|endoftext|> must be id 0"
    return tok


class _ByteTok:
    """Smoke tests only (--fake-tokenizer, where `tokenizers` is missing): id 0 = EOT, bytes + 1."""
    class _E:
        def __init__(self, ids):
            self.ids = ids

    def get_vocab_size(self):
        return 257

    def token_to_id(self, t):
        return 0 if t == EOT else None

    def encode(self, s, add_special_tokens=False):
        return self._E([b + 1 for b in s.encode()])

    def encode_batch(self, docs, add_special_tokens=False):
        return [self.encode(d) for d in docs]

    def decode(self, ids, skip_special_tokens=False):
        return bytes(i - 1 for i in ids if i).decode("utf-8", "replace")

    def save(self, path):
        open(path, "w").write("{}")


def encode_docs(tok, docs):
    ids = []
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(0)
    return torch.tensor(ids, dtype=torch.int32)


# ----------------------------------------------------------------------------- sampling

@torch.no_grad()
def generate(model, ids, n_new, temperature, gen, device):
    """Full-sequence forward (form A, fp32) per new token, as the reference defines the model."""
    ids = list(ids)
    for _ in range(n_new):
        ctx = ids[-model.cfg.max_seq_len:]
        logits = model(torch.tensor([ctx], device=device), sdpa="explicit")[0, -1].float()
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            p = torch.softmax(logits / temperature, -1)
            nxt = int(torch.multinomial(p.cpu(), 1, generator=gen))
        ids.append(nxt)
        if nxt == 0:
            break
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=330.0, help="seconds of training steps")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--n-layers", type=int, default=6)
    ap.add_argument("--d-ssm", type=int, default=16)
    ap.add_argument("--d-ff", type=int, default=672)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--compile", type=int, default=1)
    ap.add_argument("--save-dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--max-steps", type=int, default=0, help="cap (smoke tests)")
    ap.add_argument("--sample-tokens", type=int, default=160)
    ap.add_argument("--workdir", default="/tmp/sisa_demo", help="the model dir is built in WORKDIR/demo")
    ap.add_argument("--sdpa", default="torch", choices=["torch", "explicit"])
    ap.add_argument("--fake-tokenizer", action="store_true", help="smoke tests without `tokenizers`")
    a = ap.parse_args()

    torch.manual_seed(1234)
    random.seed(1234)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"torch {torch.__version__} device {dev} "
        f"{torch.cuda.get_device_name() if dev == 'cuda' else ''}")
    outdir = os.path.join(a.workdir, "demo")
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(outdir, exist_ok=True)

    # ---- data + tokenizer
    text = open(a.corpus, encoding="utf-8").read()
    docs = [d for d in text.split(EOT) if d]
    n_val = max(1, len(docs) // 100)           # corpus is in hash order: the last 1% is a random 1%
    train_docs, val_docs = docs[:-n_val], docs[-n_val:]
    log(f"corpus {len(text.encode())} bytes, {len(docs)} documents ({len(val_docs)} held out)")
    tok = _ByteTok() if a.fake_tokenizer else train_tokenizer(train_docs, a.vocab)
    tok.save(os.path.join(outdir, "tokenizer.json"))
    V = tok.get_vocab_size()
    log(f"tokenizer trained: vocab {V}")
    train_ids = encode_docs(tok, train_docs)
    val_ids = encode_docs(tok, val_docs)
    log(f"tokens: train {train_ids.numel()}, val {val_ids.numel()} "
        f"({len(text.encode()) / (train_ids.numel() + val_ids.numel()):.2f} bytes/token)")
    train_gpu = train_ids.to(dev).long()
    val_gpu = val_ids.to(dev).long()

    # ---- model
    cfg = sisa_ref.SisaConfig(vocab_size=V, d_model=a.d_model, n_heads=a.n_heads, n_layers=a.n_layers,
                              d_ff=a.d_ff, head_dim=a.d_model // a.n_heads, d_ssm=a.d_ssm,
                              arch="sisa" if a.d_ssm else "transformer", max_seq_len=a.seq,
                              eos_token_id=0)
    model = sisa_ref.SisaModel(cfg)
    sisa_ref.init_weights(model)
    model.to(dev)
    n_params = sisa_ref.count_params(model)
    log(f"config {json.dumps(cfg.to_dict())}")
    log(f"parameters {n_params}")

    lam = [p for n, p in model.named_parameters() if n.endswith("lambda_raw")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("lambda_raw")]
    groups = [{"params": rest, "weight_decay": 0.1, "lr_mul": 1.0},
              {"params": lam, "weight_decay": 0.0, "lr_mul": 0.1}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if dev == "cuda" else {}))
    fwd = model
    if a.compile and dev == "cuda":
        fwd = torch.compile(model)

    B, T = a.batch, a.seq
    gen = torch.Generator(device=dev)
    gen.manual_seed(1)

    def batch_from(ids, bs, g=None, starts=None):
        if starts is None:
            starts = torch.randint(0, ids.numel() - T - 1, (bs,), device=dev, generator=g)
        idx = starts[:, None] + torch.arange(T + 1, device=dev)[None, :]
        w = ids[idx]
        return w[:, :-1], w[:, 1:]

    vg = torch.Generator(device=dev)
    vg.manual_seed(2)
    val_starts = torch.randint(0, val_gpu.numel() - T - 1, (B * 2,), device=dev, generator=vg)

    def evaluate():
        model.eval()
        tot = 0.0
        with torch.no_grad(), torch.autocast(device_type=dev, dtype=torch.bfloat16):
            for i in range(2):
                x, y = batch_from(val_gpu, B, starts=val_starts[i * B:(i + 1) * B])
                lg = model(x, sdpa=a.sdpa)      # eager: no recompiles for eval mode / no_grad
                tot += F.cross_entropy(lg.float().reshape(-1, V), y.reshape(-1)).item()
        model.train()
        return tot / 2

    def lr_at(step, total):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        prog = min(1.0, (step - a.warmup) / max(1, total - a.warmup))
        return a.lr * 0.5 * (1 + math.cos(math.pi * prog))

    def train_step(step, total):
        lr = lr_at(step, total)
        for g_ in opt.param_groups:
            g_["lr"] = lr * g_["lr_mul"]
        x, y = batch_from(train_gpu, B, gen)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16):
            lg = fwd(x, sdpa=a.sdpa)
        loss = F.cross_entropy(lg.float().reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss, gn, lr

    # ---- training: measure speed over the first steps, then fix the step count to the budget
    curve, vcurve = [], []
    total = a.max_steps or 10 ** 9
    step = 0
    t_train0 = time.time()
    t_meas = None
    best = (float("inf"), None, -1)
    pending = []
    while step < total:
        if step == 0:
            try:
                loss, gn, lr = train_step(step, total)
                if dev == "cuda":
                    torch.cuda.synchronize()
            except Exception as e:  # torch.compile trouble: fall back to eager
                if fwd is model:
                    raise
                log(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); eager instead")
                fwd = model
                opt.zero_grad(set_to_none=True)
                loss, gn, lr = train_step(step, total)
            log(f"first step done (compile included) after {time.time() - t_train0:.1f}s")
        else:
            loss, gn, lr = train_step(step, total)
        pending.append((step, loss.detach(), gn.detach(), lr))
        step += 1
        if step == 20:
            if dev == "cuda":
                torch.cuda.synchronize()
            t_meas = time.time()
        if step == 120 and not a.max_steps:
            if dev == "cuda":
                torch.cuda.synchronize()
            dt = (time.time() - t_meas) / 100
            left = a.budget_s - (time.time() - t_train0)
            total = step + max(0, int(left / (dt * 1.04)))   # 4% margin for the evaluations
            log(f"measured {dt * 1e3:.2f} ms/step = {B * T / dt:,.0f} tokens/s; total steps -> {total}")
        if step % 50 == 0 or step == total:
            for s_, l_, g_, lr_ in pending:
                curve.append((s_, l_.item()))
            s_, l_, g_, lr_ = pending[-1]
            pending = []
            if step % 250 == 0 or step == total:
                vl = evaluate()
                vcurve.append((step, vl))
                if vl < best[0]:
                    best = (vl, {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
                log(f"step {step}/{total if total < 10 ** 9 else '?'} loss {l_.item():.4f} "
                    f"val {vl:.4f} gnorm {g_.item():.3f} lr {lr_:.2e} "
                    f"tokens {step * B * T:,} t {time.time() - t_train0:.0f}s")
    if dev == "cuda":
        torch.cuda.synchronize()
    t_train = time.time() - t_train0
    toks = step * B * T
    final_train = sum(l for _, l in curve[-50:]) / len(curve[-50:])
    log(f"trained {step} steps, {toks:,} tokens ({toks / train_ids.numel():.1f} epochs) in "
        f"{t_train:.1f}s = {toks / t_train:,.0f} tokens/s overall (compile and evals included)")
    log(f"final train loss (mean of last 50 steps) {final_train:.4f}; final val loss {vcurve[-1][1]:.4f}; "
        f"best val {best[0]:.4f} at step {best[2]}")
    if best[2] != step:
        log(f"keeping the best-val weights (step {best[2]})")
        model.load_state_dict(best[1])
    lams = [sisa_ref.softplus(l.detach().float()).tolist() for l in lam]
    log("lambda per layer/head: " + "; ".join(" ".join(f"{v:.3f}" for v in l) for l in lams))
    ab = [model.layers[i].alpha_proj.bias.detach().float().tolist() for i in range(cfg.n_layers)] \
        if cfg.d_ssm else []
    log("alpha_proj.bias per layer/head: " + "; ".join(" ".join(f"{v:.2f}" for v in l) for l in ab))

    # ---- save the model dir
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    dt_save = torch.bfloat16 if a.save_dtype == "bf16" else torch.float32
    sisa_ref.save_state_dict_dir(outdir, cfg, sd, dt_save)
    log(f"saved {outdir} ({a.save_dtype}); model.safetensors "
        f"{os.path.getsize(os.path.join(outdir, 'model.safetensors'))} bytes")

    # ---- reload what was saved (fp32 compute from the stored weights) and sample from it
    ref = sisa_ref.load_model_dir(outdir, torch.float32, dev)
    with torch.no_grad():
        vl = 0.0
        for i in range(2):
            x, y = batch_from(val_gpu, B, starts=val_starts[i * B:(i + 1) * B])
            vl += F.cross_entropy(ref(x, sdpa=a.sdpa).float().reshape(-1, V), y.reshape(-1)).item()
        log(f"val loss of the saved weights, fp32 forward: {vl / 2:.4f}")
        lg = ref(torch.tensor([[1, 2, 3]], device=dev), sdpa="explicit")[0, -1].double()
        top = torch.topk(lg, 5)
        log("reference fp32 logits for tokens 1,2,3, top 5: " + ", ".join(
            f"{i} {tok.decode([i])!r} {v:+.6f}" for v, i in zip(top.values.tolist(), top.indices.tolist())))
    prompts = ["The ", "Debian is", "Q: What is a package?\nA:", "A man", "def ", "Life is",
               "To install the"]
    sg = torch.Generator()
    sg.manual_seed(42)
    lines = [f"# Samples from models/demo by the PyTorch reference (tools/reference/sisa_ref.py, fp32, "
             f"form A, explicit attention), {a.sample_tokens} new tokens at most, stop at <|endoftext|>.",
             "# temperature 0.8: plain softmax sampling (no top-k/top-p), torch.Generator seed 42.", ""]
    for p in prompts:
        ids = tok.encode(p).ids
        for temp in (0.0, 0.8):
            out = generate(ref, ids, a.sample_tokens, temp, sg, dev)
            txt = tok.decode(out[len(ids):], skip_special_tokens=False)
            lines.append(f"=== prompt {p!r}  ({'greedy' if temp == 0 else 'temperature 0.8'}) "
                         f"prompt ids {ids}")
            lines.append(p + txt)
            lines.append("")
    with open(os.path.join(outdir, "samples.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("samples written")

    # ---- loss curve
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        xs = [s * B * T / 1e6 for s, _ in curve]
        ys = [l for _, l in curve]
        k = 20
        sm = [sum(ys[max(0, i - k + 1):i + 1]) / len(ys[max(0, i - k + 1):i + 1]) for i in range(len(ys))]
        ax.plot(xs, ys, color="#bbbbbb", lw=0.5, label="train (per step)")
        ax.plot(xs, sm, color="C0", lw=1.2, label=f"train ({k}-step mean)")
        ax.plot([s * B * T / 1e6 for s, _ in vcurve], [l for _, l in vcurve], "o-", color="C3",
                ms=3, label="val (held-out 1% of documents)")
        ax.set_xlabel("tokens seen (millions)")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_ylim(min(ys + [l for _, l in vcurve]) - 0.2, min(max(ys), 8.5))
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"SISA demo: d={cfg.d_model} L={cfg.n_layers} H={cfg.n_heads} d_s={cfg.d_ssm} "
                     f"d_ff={cfg.d_ff}, V={V}, {n_params / 1e6:.2f}M params")
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "loss.png"))
        log("loss.png written")
    except Exception as e:
        log(f"loss.png failed: {e}")

    with open(os.path.join(outdir, "train_log.txt"), "w") as f:
        f.write("\n".join(LOG) + "\n")
        f.write("\n# train loss per step (step loss)\n")
        f.write("\n".join(f"{s} {l:.4f}" for s, l in curve) + "\n")
        f.write("\n# val loss (step loss)\n")
        f.write("\n".join(f"{s} {l:.4f}" for s, l in vcurve) + "\n")
    with tarfile.open(os.path.join(a.out, "demo_model.tar"), "w") as tf:
        tf.add(outdir, arcname="demo")
    import shutil
    for f in ("train_log.txt", "samples.txt", "loss.png"):
        shutil.copy(os.path.join(outdir, f), os.path.join(a.out, f))
    print("done", flush=True)


if __name__ == "__main__":
    main()
