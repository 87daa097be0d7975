#!/usr/bin/env python3
"""PyTorch reference for SISA (and its Transformer control, d_s = 0), written from SISA.md.

Library:  SisaConfig (= config.json of docs/FORMAT.md), SisaModel (state_dict keys = SISA.md §5),
          init_weights (SISA.md §6), load_model_dir / save_model_dir, load_safetensors /
          save_safetensors (hand-written: needs neither numpy nor the safetensors package).
Forward:  the model's own dtype (model.double() -> fp64, default fp32), or bf16 autocast
          (wrap the call in torch.autocast, as the authors trained).  sdpa="explicit" (default:
          matmul + causal mask + softmax, in fp32 or fp64, independent of torch's kernels) or
          "torch" (F.scaled_dot_product_attention).  form="A" (augmented, clamp included: the
          published definition) or "B" (factored, no c, no clamp: what a KV cache must equal).
CLI:      python3 sisa_ref.py --model DIR --tokens 1,2,3 [--dtype fp64|fp32|bf16] [--device cuda]

Places where the spec had to be read are marked "SPEC:".
"""
import argparse
import json
import math
import os
import struct
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- config

@dataclass
class SisaConfig:
    vocab_size: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    head_dim: int = 64
    d_ssm: int = 0
    arch: str = "sisa"
    max_seq_len: int = 2048
    norm_eps: float = 1e-6
    rope_base: float = 10000.0
    ssm_clamp: float = 11.0
    eos_token_id: int = -1

    def __post_init__(self):
        if self.arch not in ("sisa", "transformer"):
            raise ValueError(f"arch must be 'sisa' or 'transformer', got {self.arch!r}")
        if self.d_model != self.n_heads * self.head_dim:
            raise ValueError(f"d_model {self.d_model} != n_heads {self.n_heads} * head_dim {self.head_dim}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even (RoPE pairs)")
        if self.arch == "sisa" and (self.d_ssm <= 0 or self.d_ssm % 2):
            raise ValueError(f"sisa needs an even d_ssm > 0, got {self.d_ssm}")
        if self.arch == "transformer" and self.d_ssm != 0:
            raise ValueError(f"transformer needs d_ssm = 0, got {self.d_ssm}")

    REQUIRED = ("format", "format_version", "arch", "vocab_size", "d_model", "n_heads", "head_dim",
                "n_layers", "d_ff", "max_seq_len")

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)} | {"format", "format_version"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config.json: unknown keys {unknown}")
        missing = [k for k in cls.REQUIRED if k not in d]
        if missing:
            raise ValueError(f"config.json: missing keys {missing}")
        if d["format"] != "sisa" or d["format_version"] != 1:
            raise ValueError("config.json: format must be 'sisa' and format_version 1")
        return cls(**{k: v for k, v in d.items() if k not in ("format", "format_version")})

    def to_dict(self):
        return {"format": "sisa", "format_version": 1, **asdict(self)}


def expected_shapes(cfg):
    """name -> shape of every tensor of the model (SISA.md §5, docs/FORMAT.md)."""
    d, H, ds, ff = cfg.d_model, cfg.n_heads, cfg.d_ssm, cfg.d_ff
    s = {"embed.weight": (cfg.vocab_size, d), "final_norm.weight": (d,)}
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        for w in ("W_Q", "W_K", "W_V", "W_O"):
            s[p + w + ".weight"] = (d, d)
        if ds:
            s[p + "W_B.weight"] = s[p + "W_C.weight"] = (H * ds, d)
            s[p + "alpha_proj.weight"], s[p + "alpha_proj.bias"] = (H, d), (H,)
            s[p + "theta_proj.weight"] = (H * ds // 2, d)
            s[p + "lambda_raw"] = (H,)
        s[p + "attn_norm.weight"] = s[p + "ffn_norm.weight"] = (d,)
        s[p + "ffn.w_gate.weight"] = s[p + "ffn.w_up.weight"] = (ff, d)
        s[p + "ffn.w_down.weight"] = (d, ff)
    return s


# ----------------------------------------------------------------------------- math helpers

def _hi(dtype):
    """SPEC §3: g, Phi, exp, rotations, softplus, norm statistics in fp32 at least."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def softplus(x):
    # SPEC: softplus(x) = log(1 + e^x), exactly (no threshold; torch's F.softplus returns x for
    # x > 20, an error below 2.1e-9 that only an fp64 reference can see).
    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-x.abs()))


def rotate_pairs(x, ang):
    """Rotate INTERLEAVED pairs (2m, 2m+1) of x's last dim by ang[..., m]:
    (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos).  Used for RoPE and for Rot(Phi)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = torch.cos(ang), torch.sin(ang)
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


def rope_angles(T, head_dim, base, device):
    # SPEC: angle[t, m] = t * base^(-2m/d_h), t = 0..T-1 absolute position.  Computed in fp64 and
    # cast to the working dtype where used (the authors' fp32 angles are unknown; the difference
    # is ~T*6e-8 rad, far below bf16 resolution).
    t = torch.arange(T, dtype=torch.float64, device=device)
    freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    return t[:, None] * freq[None, :]                                     # (T, d_h/2)


def rms_norm(x, norm, eps):
    # SPEC: RMSNorm(x) = x / sqrt(mean(x^2) + eps) * weight, eps inside the sqrt, statistics
    # and the weight multiply in fp32 (fp64 for the fp64 reference), result in x's dtype.
    xf = x.to(_hi(x.dtype))
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * norm.weight.to(y.dtype)).to(x.dtype)


def attention(Qh, Kh, V, scale, sdpa="explicit", bias=None):
    """Causal softmax(Qh Khᵀ * scale + bias) V.  Qh/Kh may be wider than V.
    explicit: matmul + mask + softmax with fp32 (fp64) accumulation, autocast off: the inputs are
    already in the working dtype (bf16 under autocast), as an SDPA kernel would see them."""
    T = Qh.shape[-2]
    causal = torch.ones(T, T, dtype=torch.bool, device=Qh.device).tril()
    if sdpa == "torch":
        mask = None
        if bias is not None:
            mask = bias.masked_fill(~causal, float("-inf")).to(Qh.dtype)
        return F.scaled_dot_product_attention(Qh, Kh, V, attn_mask=mask, is_causal=bias is None,
                                              scale=scale)
    acc = _hi(Qh.dtype)
    with torch.autocast(device_type=Qh.device.type, enabled=False):
        S = torch.matmul(Qh.to(acc), Kh.to(acc).transpose(-1, -2)) * scale
        if bias is not None:
            S = S + bias.to(acc)
        P = torch.softmax(S.masked_fill(~causal, float("-inf")), dim=-1)
        return torch.matmul(P, V.to(acc)).to(V.dtype)


# ----------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))


class FFN(nn.Module):
    def __init__(self, d, d_ff):
        super().__init__()
        self.w_gate = nn.Linear(d, d_ff, bias=False)
        self.w_up = nn.Linear(d, d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class SisaBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, H, ds = cfg.d_model, cfg.n_heads, cfg.d_ssm
        self.W_Q, self.W_K, self.W_V, self.W_O = (nn.Linear(d, d, bias=False) for _ in range(4))
        if ds:
            self.W_B = nn.Linear(d, H * ds, bias=False)
            self.W_C = nn.Linear(d, H * ds, bias=False)
            self.alpha_proj = nn.Linear(d, H, bias=True)
            self.theta_proj = nn.Linear(d, H * ds // 2, bias=False)
            self.lambda_raw = nn.Parameter(torch.full((H,), -1.0, dtype=torch.float32))
        self.attn_norm, self.ffn_norm = RMSNorm(d), RMSNorm(d)
        self.ffn = FFN(d, cfg.d_ff)

    def forward(self, x, ang, inter, p, sdpa="explicit", form="A"):
        cfg = self.cfg
        Bt, T, d = x.shape
        H, dh, ds = cfg.n_heads, cfg.head_dim, cfg.d_ssm
        scale = dh ** -0.5       # SPEC: 1/sqrt(d_h), never 1/sqrt(d_h + d_s)

        def heads(t, w):         # (Bt, T, H*w) -> (Bt, H, T, w); head h = rows [h*w, (h+1)*w)
            return t.view(Bt, T, H, w).transpose(1, 2)

        xn = rms_norm(x, self.attn_norm, cfg.norm_eps)
        q, k, v = heads(self.W_Q(xn), dh), heads(self.W_K(xn), dh), heads(self.W_V(xn), dh)
        hi = _hi(q.dtype)
        # SPEC: RoPE on interleaved pairs, in fp32 at least, result back in q's working dtype.
        q = rotate_pairs(q.to(hi), ang.to(hi)).to(q.dtype)
        k = rotate_pairs(k.to(hi), ang.to(hi)).to(k.dtype)
        cmax = None
        bias = None
        Qh, Kh = q, k
        if ds:
            Cs = heads(self.W_C(xn), ds).to(hi)
            Bs = heads(self.W_B(xn), ds).to(hi)
            log_alpha = -softplus(self.alpha_proj(xn).to(hi)).transpose(1, 2)   # (Bt, H, T)
            theta = heads(self.theta_proj(xn), ds // 2).to(hi)                 # (Bt, H, T, ds/2)
            g = torch.cumsum(log_alpha, dim=-1)          # SPEC: inclusive prefix sums (k <= t)
            Phi = torch.cumsum(theta, dim=2)
            # SPEC: c over the whole sequence, separately per batch row and head.  It makes form A
            # depend on future tokens when the clamp is active (form A is then not causal).
            c = (g.amax(-1, keepdim=True) + g.amin(-1, keepdim=True)) / 2
            cmax = (g - c).abs().amax()
            u = (g - c).clamp(-cfg.ssm_clamp, cfg.ssm_clamp)[..., None]
            # SPEC: Rot(Phi_t) with Phi inclusive of t, applied to both Cbar and Bbar (rotation and
            # the scalar exp(+-u) commute; we scale first).
            Cbar = rotate_pairs(torch.exp(u) * Cs, Phi)
            Bbar = rotate_pairs(torch.exp(-u) * Bs, Phi)
            lam = softplus(self.lambda_raw.to(hi))       # SPEC: lambda = softplus(lambda_raw) > 0
            s = (dh ** 0.25 * torch.sqrt(lam)).view(1, H, 1, 1)
            # SPEC: the widened vectors are stored in the working dtype (bf16 under autocast), as
            # an SDPA kernel receives them; that is why c exists (exp(11) < bf16/f16 max).
            Qh = torch.cat([q, (s * Cbar).to(q.dtype)], dim=-1)
            Kh = torch.cat([k, (s * Bbar).to(k.dtype)], dim=-1)
            if form == "B":      # factored: content + lambda exp(g_i - g_j) RotCs_i . RotBs_j
                Qh, Kh = q, k
                causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
                decay = torch.exp((g[..., :, None] - g[..., None, :]).masked_fill(~causal, float("-inf")))
                kern = torch.matmul(rotate_pairs(Cs, Phi), rotate_pairs(Bs, Phi).transpose(-1, -2))
                bias = lam.view(1, H, 1, 1) * decay * kern
        Y = attention(Qh, Kh, v, scale, sdpa, bias)                          # (Bt, H, T, d_h)
        x = x + self.W_O(Y.transpose(1, 2).reshape(Bt, T, d))
        x = x + self.ffn(rms_norm(x, self.ffn_norm, cfg.norm_eps))
        if inter is not None:
            inter[p + "xn"], inter[p + "q"], inter[p + "k"] = xn, q, k
            if ds:
                inter[p + "g"], inter[p + "Phi"] = g, Phi
                inter[p + "Cbar"], inter[p + "Bbar"] = Cbar, Bbar
                inter[p + "Qhat"] = torch.cat([q.to(hi), s * Cbar], dim=-1)
                inter[p + "Khat"] = torch.cat([k.to(hi), s * Bbar], dim=-1)
            inter[p + "Y"], inter[p + "out"] = Y, x
        return x, cmax


class SisaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(SisaBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.d_model)
        self.last_clamp_max_abs_u = None

    def forward(self, tokens, return_intermediates=False, sdpa="explicit", form="A"):
        """tokens (Bt, T) -> logits (Bt, T, V) [, dict of intermediates named as docs/FORMAT.md]."""
        cfg = self.cfg
        T = tokens.shape[1]
        if T > cfg.max_seq_len:
            raise ValueError(f"T = {T} > max_seq_len = {cfg.max_seq_len}")
        x = self.embed(tokens.long())
        ang = rope_angles(T, cfg.head_dim, cfg.rope_base, x.device)
        inter = {} if return_intermediates else None
        cm = []
        for i, layer in enumerate(self.layers):
            x, c = layer(x, ang, inter, f"layers.{i}.", sdpa, form)
            cm.append(c)
        logits = F.linear(rms_norm(x, self.final_norm, self.cfg.norm_eps), self.embed.weight)
        if cfg.d_ssm:
            self.last_clamp_max_abs_u = torch.stack(cm).detach()
        if not return_intermediates:
            return logits
        inter["logits"] = logits
        if cfg.d_ssm:
            inter["clamp_max_abs_u"] = self.last_clamp_max_abs_u
        return logits, inter


def cast_weights(model, dtype):
    """Cast every parameter to dtype except lambda_raw, which SISA.md keeps in fp32 (or fp64)."""
    for name, p in model.named_parameters():
        if not (name.endswith("lambda_raw") and dtype in (torch.bfloat16, torch.float16)):
            p.data = p.data.to(dtype)
    return model


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def init_weights(model, generator=None):
    """SISA.md §6: every weight N(0, 0.02); alpha_proj.bias = -5; theta_proj.weight N(0, 0.01);
    lambda_raw = -1; norm weights 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith("lambda_raw"):
                p.fill_(-1.0)
            elif name.endswith("alpha_proj.bias"):
                p.fill_(-5.0)
            elif name.endswith("theta_proj.weight"):
                p.normal_(0.0, 0.01, generator=generator)
            else:
                p.normal_(0.0, 0.02, generator=generator)
    return model


def test_init(model, generator=None, alpha_bias=(-3.0, -1.0)):
    """§6 init made more discriminating for tests and golden files (a §6 model at d = 128 barely
    uses its SSM term and has all-ones norms, so some bugs would not show):
    norm weights 1 + 0.1 N(0,1); W_Q, W_K, W_B, W_C N(0, 0.05); theta_proj N(0, 0.03);
    lambda_raw U(-1, 1) per head; alpha_proj.bias U(lo, hi) per head for a tuple (lo, hi), or
    exactly the values of a list (one per head).  Rest as §6."""
    init_weights(model, generator)
    H = model.cfg.n_heads
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn(p.shape, generator=generator))
            elif name.split(".")[-2] in ("W_Q", "W_K", "W_B", "W_C"):
                p.normal_(0.0, 0.05, generator=generator)
            elif name.endswith("theta_proj.weight"):
                p.normal_(0.0, 0.03, generator=generator)
            elif name.endswith("lambda_raw"):
                p.uniform_(-1.0, 1.0, generator=generator)
            elif name.endswith("alpha_proj.bias"):
                if isinstance(alpha_bias, list):
                    assert len(alpha_bias) == H, "one alpha_proj.bias per head"
                    p.copy_(torch.tensor(alpha_bias, dtype=p.dtype))
                else:
                    p.uniform_(alpha_bias[0], alpha_bias[1], generator=generator)
    return model


# ----------------------------------------------------------------------------- safetensors

ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
             "U8": torch.uint8, "BOOL": torch.bool}
ST_NAMES = {v: k for k, v in ST_DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    """Write safetensors by hand: u64 header length, JSON header padded with spaces to 8 bytes,
    data with no holes, largest element size first (keeps F64 data 8-byte aligned)."""
    items = sorted(((n, t.detach().cpu().contiguous()) for n, t in tensors.items()),
                   key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, off = {}, 0
    for name, t in items:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + n]}
        off += n
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    buf = bytearray(8 + len(hb) + off)
    struct.pack_into("<Q", buf, 0, len(hb))
    buf[8:8 + len(hb)] = hb
    pos = 8 + len(hb)
    for _, t in items:
        n = t.numel() * t.element_size()
        if n:
            torch.frombuffer(buf, dtype=torch.uint8, count=n, offset=pos).copy_(t.reshape(-1).view(torch.uint8))
        pos += n
    with open(path, "wb") as f:
        f.write(buf)


def load_safetensors(path):
    """-> (dict name -> tensor, metadata dict).  Checks offsets: in range, no overlap, no holes."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for safetensors")
    (n,) = struct.unpack_from("<Q", data, 0)
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} beyond end of file")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None) or {}
    base, size = 8 + n, len(data) - 8 - n
    out, spans = {}, []
    for name, info in header.items():
        if info.get("dtype") not in ST_DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info.get('dtype')}")
        dt = ST_DTYPES[info["dtype"]]
        shape = [int(s) for s in info["shape"]]
        b, e = info["data_offsets"]
        nbytes = math.prod(shape) * torch.empty(0, dtype=dt).element_size()
        if not (0 <= b <= e <= size) or e - b != nbytes:
            raise ValueError(f"{path}: tensor {name}: data_offsets {[b, e]} disagree with shape/dtype "
                             f"({nbytes} bytes) or the data size {size}")
        spans.append((b, e, name))
        raw = torch.frombuffer(bytearray(data[base + b:base + e]), dtype=torch.uint8) if nbytes \
            else torch.empty(0, dtype=torch.uint8)
        out[name] = raw.view(dt).reshape(shape)
    pos = 0
    for b, e, name in sorted(spans):
        if b != pos:
            raise ValueError(f"{path}: tensor {name}: data overlaps or leaves a hole at byte {pos}")
        pos = e
    if pos != size:
        raise ValueError(f"{path}: {size - pos} trailing bytes after the last tensor")
    return out, meta


# ----------------------------------------------------------------------------- model directory

def check_state_dict(cfg, sd, where="model"):
    """Raise ValueError naming every missing/extra tensor and every shape/dtype problem."""
    exp = expected_shapes(cfg)
    errs = [f"missing tensor {k}" for k in exp if k not in sd]
    errs += [f"unexpected tensor {k}" for k in sd if k not in exp]
    for k, shp in exp.items():
        if k in sd:
            t = sd[k]
            if tuple(t.shape) != tuple(shp):
                errs.append(f"tensor {k}: shape {tuple(t.shape)}, expected {tuple(shp)}")
            if t.dtype not in (torch.float32, torch.bfloat16, torch.float16):
                errs.append(f"tensor {k}: dtype {t.dtype} (F32, BF16 or F16 only)")
            elif k.endswith("lambda_raw") and t.dtype != torch.float32:
                errs.append(f"tensor {k}: lambda_raw must be F32, got {t.dtype}")
            elif not torch.isfinite(t.float()).all():
                errs.append(f"tensor {k}: NaN or Inf")
    if errs:
        raise ValueError(f"{where}: " + "; ".join(errs))


def read_config(path):
    with open(os.path.join(path, "config.json")) as f:
        return SisaConfig.from_dict(json.load(f))


def write_config(path, cfg):
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg.to_dict(), f, indent=2)
        f.write("\n")


def save_state_dict_dir(path, cfg, sd, dtype=None):
    """Write config.json + model.safetensors; dtype None keeps each tensor's dtype; lambda_raw F32."""
    os.makedirs(path, exist_ok=True)
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        out[k] = v.float() if k.endswith("lambda_raw") else (v if dtype is None else v.to(dtype))
    check_state_dict(cfg, out, path)
    write_config(path, cfg)
    save_safetensors(os.path.join(path, "model.safetensors"), out, {"format": "pt"})


def save_model_dir(path, model, dtype=torch.float32):
    save_state_dict_dir(path, model.cfg, model.state_dict(), dtype)


def load_model_dir(path, dtype=torch.float32, device="cpu"):
    """-> SisaModel with weights cast to dtype (lambda_raw stays fp32 unless dtype is fp64)."""
    cfg = read_config(path)
    sd, _ = load_safetensors(os.path.join(path, "model.safetensors"))
    check_state_dict(cfg, sd, path)
    model = SisaModel(cfg)
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return cast_weights(model, dtype).to(device).eval()


# ----------------------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description="SISA PyTorch reference: top-k next tokens")
    ap.add_argument("--model", required=True, help="model dir (config.json + model.safetensors)")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    ap.add_argument("--dtype", default="fp64", choices=["fp64", "fp32", "bf16"],
                    help="fp64/fp32: model in that dtype; bf16: fp32 weights under bf16 autocast")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sdpa", default="explicit", choices=["explicit", "torch"])
    ap.add_argument("--form", default="A", choices=["A", "B"])
    ap.add_argument("--topk", type=int, default=5)
    a = ap.parse_args(argv)
    model = load_model_dir(a.model, torch.float64 if a.dtype == "fp64" else torch.float32, a.device)
    toks = torch.tensor([[int(t) for t in a.tokens.split(",")]], device=a.device)
    with torch.no_grad(), torch.autocast(device_type=torch.device(a.device).type, dtype=torch.bfloat16,
                                         enabled=a.dtype == "bf16"):
        logits = model(toks, sdpa=a.sdpa, form=a.form)
    last = logits[0, -1].double()
    prob = torch.softmax(last, -1)
    top = torch.topk(last, min(a.topk, last.numel()))
    dec = None
    tok_path = os.path.join(a.model, "tokenizer.json")
    if os.path.exists(tok_path):
        try:
            from tokenizers import Tokenizer
            dec = Tokenizer.from_file(tok_path)
        except ImportError:
            pass
    print(f"{model.cfg.arch} L={model.cfg.n_layers} d={model.cfg.d_model} d_s={model.cfg.d_ssm} "
          f"T={toks.shape[1]} dtype={a.dtype} form={a.form}")
    if model.last_clamp_max_abs_u is not None:
        cm = model.last_clamp_max_abs_u.tolist()
        act = any(v > model.cfg.ssm_clamp for v in cm)
        print("max|g-c| per layer:", " ".join(f"{v:.3f}" for v in cm),
              "(clamp ACTIVE: form A != form B)" if act else "(clamp inactive)")
    for rank, (lv, ti) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
        txt = f" {dec.decode([ti])!r}" if dec else ""
        print(f"{rank + 1}. token {ti:6d}{txt}  logit {lv:+.6f}  p {prob[ti].item():.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
