/*
 * ops.h — the op set, each with its ONE written definition.
 *
 * Every backend computes exactly these functions; the CPU reference kernels
 * (backends/cpu/ref_*.c) are the executable form of the comments below, and the conformance suite
 * compares every backend with them. Conventions shared by all ops:
 *   - Shapes are 4-D, outermost first (tensor.h). "row" = the innermost dimension.
 *   - Sources may be any strided view; the destination is a fresh contiguous tensor unless the
 *     op is VIEW. Float sources of any float dtype are read as real numbers; math is done in at
 *     least fp32 (the oracle: fp64); the result is rounded to dst's dtype (the oracle rounds
 *     fp64 -> f32 -> f16/bf16; the double rounding can differ from a single one by 1 ulp, which
 *     the thresholds absorb). F64 tensors are for the oracle's reference outputs only.
 *   - fparams / iparams hold scalar parameters; their meaning is listed per op.
 *   - An optional source is NULL when absent.
 * Backends may fuse ops (SSM_CHANNELS+AUGMENT, RMS_NORM+MATMUL) but must then produce the same
 * values as the unfused definitions.
 */
#ifndef SISA_OPS_H
#define SISA_OPS_H

#include "tensor.h"

enum sisa_op {
    /* Leaf: a weight or an input. No computation. */
    SISA_OP_NONE = 0,

    /* VIEW: dst aliases src0's memory with its own shape, strides and byte offset (reshape,
     * permute, slice). No computation; no storage of its own. */
    SISA_OP_VIEW,

    /* CPY: dst[i] = src0[i] for every index, converting dtype (round to nearest even). Same shape.
     * Used to make a strided view contiguous or to change storage dtype. */
    SISA_OP_CPY,

    /* EMBED: src0 = table (1,1,V,D), src1 = ids I32 (1,1,B,T).
     * dst (1,B,T,D): dst[0,b,t,:] = table[0,0,ids[0,0,b,t],:].
     * Ids must lie in [0,V): callers validate them before compute (sisa_model does); a kernel that
     * meets one out of range writes zeros for that row. */
    SISA_OP_EMBED,

    /* RMS_NORM: src0 = x (any shape, rows of D), src1 = w (1,1,1,D); fparams[0] = eps.
     * dst[..,i] = x[..,i] / sqrt(mean_j(x[..,j]^2) + eps) * w[i]. Statistics in >= fp32. */
    SISA_OP_RMS_NORM,

    /* ROPE: src0 = x (B,T,H,D), D even; fparams[0] = base; iparams[0] = p0 (position of t = 0).
     * Interleaved pairs: for pair m = channels (2m, 2m+1), angle = (p0 + t) * base^(-2m/D),
     * (x0,x1) -> (x0 cos - x1 sin, x0 sin + x1 cos). dst (B,T,H,D). The angle must be accurate to
     * ~1e-6 rad at any position: form (p0 + t)·freq in fp64 (freq = exp(-(2m/D) ln base)) and
     * reduce it modulo 2π in fp64 before an fp32 sin/cos — fp32 sin/cos of the raw angle is off
     * by ~1e-4 rad near position 2000, over the f32 tolerance. The oracle is all fp64. */
    SISA_OP_ROPE,

    /* ADD: dst = src0 + src1. src1's shape equals src0's or is 1 along any dimension (broadcast). */
    SISA_OP_ADD,

    /* SCALE: dst = src0 * fparams[0]. */
    SISA_OP_SCALE,

    /* MATMUL: src0 = a (A0,A1,M,K), src1 = b (B0,B1,N,K) with B0 in {1,A0}, B1 in {1,A1}
     * (b broadcasts over the batch dims). dst (A0,A1,M,N): dst[p,q,i,j] = sum_k a[p,q,i,k]*b[p',q',j,k]
     * i.e. a·bᵀ — the layout of y = x·Wᵀ with W stored [out,in]. Accumulation in >= fp32. */
    SISA_OP_MATMUL,

    /* SOFTMAX: row-wise over the last dim: dst = exp(x - max) / sum(exp(x - max)). Rows of -inf
     * only give 0s. */
    SISA_OP_SOFTMAX,

    /* ARGMAX: src0 (A0,A1,A2,N) -> dst I32 (A0,A1,A2,1): index of the largest element of the
     * row; the first such index on ties; NaN compares as larger than everything (a NaN row is
     * visible as the NaN's index, never silently a number). */
    SISA_OP_ARGMAX,

    /* SWIGLU: src0 = gate, src1 = up (same shape). dst = silu(gate) * up, silu(x) = x/(1+e^-x). */
    SISA_OP_SWIGLU,

    /* SSM_DECAY: the cumulative log-decay g of SISA.md §1.
     * src0 = alpha logits a (1,B,T,H) (xn·w_alphaᵀ, no bias yet), src1 = b_alpha (1,1,1,H),
     * optional src2 = g0 (1,1,B,H), the carry-in from earlier positions (decode; absent = 0).
     * dst F32 (1,B,H,T): g[b,h,t] = g0[b,h] + sum_{k<=t} -softplus(a[b,k,h] + b_alpha[h]),
     * softplus(x) = max(x,0) + log1p(exp(-|x|)). Prefix sum in >= fp32. */
    SISA_OP_SSM_DECAY,

    /* SSM_CHANNELS: scaled, rotated SSM channels for the augmented dot product (SISA.md §1).
     * src0 = Bs (1,B,T,H*ds), src1 = Cs (1,B,T,H*ds), src2 = theta (1,B,T,H*ds/2),
     * src3 = g F32 (1,B,H,T) from SSM_DECAY, src4 = lambda_raw F32 (1,1,1,H),
     * optional src5 = Phi0 (1,1,B,H*ds/2), the carry-in rotation (decode; absent = 0).
     * iparams[0] = mode: SISA_SSM_AUGMENTED (form A) or SISA_SSM_FACTORED (form B);
     * iparams[1] = d_h (for s); fparams[0] = clamp bound (11).
     *   Phi[b,h,t,m] = Phi0[b,h,m] + sum_{k<=t} theta[b,k,h*ds/2+m]
     *   form A: c[b,h] = (max_t g + min_t g)/2 over this call's T; u = clamp(g - c, -L, +L)
     *   form B: u = 0 (the decay exp(g_i - g_j) is applied inside SDPA instead)
     *   s_h = d_h^(1/4) * sqrt(softplus(lambda_raw[h]))
     *   dst (B,H,T,2*ds): [.., 0:ds]    = s_h * Rot(Phi_t) (exp(+u_t) Cs_t)      ("s·Cbar")
     *                     [.., ds:2ds]  = s_h * Rot(Phi_t) (exp(-u_t) Bs_t)      ("s·Bbar")
     *   Rot(Phi): pair m = channels (2m, 2m+1) rotated by angle Phi[m] as in ROPE (same accuracy
 *   rule: the prefix sum and its reduction mod 2π in fp64, or an fp32 sum whose error is kept
 *   within the f32 tolerance — Phi can reach hundreds of radians).
     * All of it in >= fp32. */
    SISA_OP_SSM_CHANNELS,

    /* AUGMENT: concatenation along the row with zero padding.
     * src0 = a (B,H,T,Da), src1 = b (B,H,T,Db); iparams[0] = W >= Da + Db.
     * dst (B,H,T,W) = [a | b | 0 ... 0]. Builds Qhat = [q | s·Cbar] and Khat = [k | s·Bbar];
     * W may round Da + Db up (e.g. to a multiple of 16) for kernels that want it: zeros add 0. */
    SISA_OP_AUGMENT,

    /* SDPA: scaled dot-product attention, d_qk may differ from d_v.
     * src0 = Q (B,H,Tq,Dqk), src1 = K (B,H,Tk,Dqk), src2 = V (B,H,Tk,Dv);
     * optional src3 = gq F32 (1,B,H,Tq), src4 = gk F32 (1,B,H,Tk): the factored decay (form B).
     * fparams[0] = scale; iparams[0] = causal (0/1); iparams[1] = p0, the absolute position of
     * query 0 (key j sits at position j); iparams[2] = d_content (form B only).
     *   form A (no gq/gk): s[i,j] = scale * Q_i·K_j
     *   form B:            s[i,j] = scale * (Q_i[:dc]·K_j[:dc] + exp(gq_i - gk_j) Q_i[dc:]·K_j[dc:])
     *   causal: s[i,j] = -inf where j > p0 + i. Masked keys contribute nothing — not even 0·V_j —
 *   so a decode cache past the current position may hold anything (NaN included).
     *   dst (B,Tq,H,Dv): dst[b,i,h,:] = sum_j softmax_j(s[i,:]) V_j  (heads interleaved per
     *   position, so a view (1,B,Tq,H*Dv) is concat_heads(Y) with no copy).
     * A query row with every key masked gives zeros. Accumulation in >= fp32. */
    SISA_OP_SDPA,

    SISA_OP_COUNT
};

enum sisa_ssm_mode { SISA_SSM_AUGMENTED = 0, SISA_SSM_FACTORED = 1 };

const char *sisa_op_name(int op);
/* Number of sources the op reads (including optional ones that are present). */
int sisa_op_n_src(const sisa_tensor *node);

#endif
