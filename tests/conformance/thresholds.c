/*
 * thresholds.c — THE threshold table of the conformance suite: one row per (op or check,
 * destination dtype), each number with the reason it is that number.
 *
 * The measure is the normalised error ||dev - ref|| / ||ref|| over the finite positions, where
 * ref is the fp64 oracle rounded once to the destination dtype (ops.h: "the result is rounded
 * once to dst's dtype"); NaN and Inf positions must agree exactly before it is even computed.
 * SISA.md 3 gives the scale: f32 ~1e-6..1e-5, tf32 ~1e-3, bf16 ~1e-2, f16 ~2e-3.
 *
 * Why the rows are keyed by the DESTINATION dtype: the oracle reads the very bytes the device
 * read, so rounding the inputs to bf16 costs nothing in this comparison; what remains is the
 * device's own arithmetic and the final rounding. SSM_DECAY always writes f32 (ops.h), so its
 * bf16-input cases are held to the f32 row.
 *
 * There is no tf32 row on purpose: no dtype stores tf32, and an f32 case computed with tf32
 * multiplies (10-bit mantissas, ~1e-3) violates ops.h ("math in at least fp32"): it fails the f32
 * row. A backend that wants tf32 must expose it as its own, visible option.
 *
 * Changing a number here changes the product's promise: say why in the reason string.
 */
#include <string.h>

#include "conform_internal.h"

#define F32 SISA_F32
#define F16 SISA_F16
#define BF16 SISA_BF16

/* The low-precision rows share their reasons. */
#define R_BF16                                                                                     \
    "bf16 storage: one rounding of the result is <= 2^-9 relative (RMS ~1.1e-3 normalised); "     \
    "1e-2 (SISA.md 3) also admits bf16 intermediates a GPU kernel may keep (e.g. P in P.V)"
#define R_F16                                                                                      \
    "f16 storage: one rounding of the result is <= 2^-11 relative (RMS ~2.8e-4); 2e-3 (SISA.md "  \
    "3) also admits f16 intermediates (e.g. P in P.V)"
#define R_EXACT                                                                                    \
    "data movement only: every element is a copy, rounded to nearest even where the dtype "     \
    "changes (ops.h), so anything but bit-exact is a bug"

static const conform_threshold table[] = {
    /* ---- exact ops ---- */
    {"CPY", F32, 0.0, true, R_EXACT},
    {"CPY", F16, 0.0, true, R_EXACT " (f16 subnormals and overflow to Inf included)"},
    {"CPY", BF16, 0.0, true, R_EXACT},
    {"EMBED", F32, 0.0, true, R_EXACT},
    {"EMBED", F16, 0.0, true, R_EXACT},
    {"EMBED", BF16, 0.0, true, R_EXACT},
    {"AUGMENT", F32, 0.0, true, R_EXACT " (the padding columns are exact zeros)"},
    {"AUGMENT", F16, 0.0, true, R_EXACT},
    {"AUGMENT", BF16, 0.0, true, R_EXACT},
    {"ARGMAX", SISA_I32, 0.0, true,
     "an index: equal or wrong (first index on ties, NaN wins: the device reads the same bytes "
     "as the oracle, so there is no rounding to excuse a difference)"},

    /* ---- element-wise ---- */
    {"ADD", F32, 1e-6, false,
     "one correctly rounded f32 operation per element: <= 2^-24 = 6e-8 relative; 1e-6 leaves "
     "room for nothing but rounding and still catches a wrong broadcast at once"},
    {"ADD", F16, 2e-3, false, R_F16},
    {"ADD", BF16, 1e-2, false, R_BF16},
    {"SCALE", F32, 1e-6, false,
     "one f32 multiply per element (the factor itself is an f32 parameter): <= 6e-8 relative"},
    {"SCALE", F16, 2e-3, false, R_F16},
    {"SCALE", BF16, 1e-2, false, R_BF16},
    {"SWIGLU", F32, 5e-6, false,
     "f32 exp in silu: GPU exp is allowed ~3+2|x| ulp (Vulkan/OpenCL precision rules), ~1e-6 at "
     "|x| <= 4, plus a divide and a multiply"},
    {"SWIGLU", F16, 2e-3, false, R_F16},
    {"SWIGLU", BF16, 1e-2, false, R_BF16},

    /* ---- reductions ---- */
    {"RMS_NORM", F32, 5e-6, false,
     "f32 sum of D squares: ~sqrt(D)*2^-24 relative (1.7e-6 at D = 768, summation-order "
     "dependent), then rsqrt (GPU rsqrt: ~2 ulp) and two multiplies"},
    {"RMS_NORM", F16, 2e-3, false, R_F16},
    {"RMS_NORM", BF16, 1e-2, false, R_BF16},
    {"SOFTMAX", F32, 5e-6, false,
     "f32 exp of (x - max) (a few ulp on GPUs) and an f32 row sum of up to 1000 terms "
     "(~sqrt(N)*2^-24 = 1.9e-6)"},
    {"SOFTMAX", F16, 2e-3, false, R_F16},
    {"SOFTMAX", BF16, 1e-2, false, R_BF16},
    {"MATMUL", F32, 1e-5, false,
     "f32 accumulation over K: ~sqrt(K)*2^-24 typical (1.7e-6 at K = 768, 3.2e-6 at K = 2908), "
     "blocking/FMA order dependent; TF32 multiplies (~1e-3) fail this row by design"},
    {"MATMUL", F16, 2e-3, false, R_F16 "; accumulation must be f32 (ops.h)"},
    {"MATMUL", BF16, 1e-2, false, R_BF16 "; accumulation must be f32 (ops.h)"},

    /* ---- positional ---- */
    {"ROPE", F32, 1e-4, false,
     "the f32 angle (p0+t)*freq has an absolute error of ~(p0+t)*2^-24 rad and freq = "
     "exp(-(2m/D) ln base) in f32 adds ~2 ulp relative, i.e. ~(p0+t)*1e-7 rad: ~2e-5 "
     "normalised at position 512, ~5e-5 at 2048 (the --full cases); 1e-4 covers positions to "
     "~4096 and still fails a wrong pairing or frequency by orders of magnitude"},
    {"ROPE", F16, 2e-3, false, R_F16 "; angles must stay f32 (ops.h)"},
    {"ROPE", BF16, 1e-2, false, R_BF16 "; angles must stay f32 (ops.h)"},

    /* ---- SISA ---- */
    {"SSM_DECAY", F32, 1e-5, false,
     "an f32 prefix sum of T terms that are all <= 0 (no cancellation): ~sqrt(T)*2^-24 typical, "
     "<= T*2^-24 = 3e-5 worst at T = 512; softplus via log1p as ops.h writes it — a "
     "log(1+exp(x)) softplus loses ~1e-5 relative at the trained bias x = -5 and is meant to "
     "fail; output is always f32, so bf16/f16-input cases use this row too"},
    {"SSM_CHANNELS", F32, 2e-5, false,
     "f32 prefix sum of the angles theta (with cancellation: ~sqrt(T)*|Phi|*2^-24 rad), sin/cos "
     "of |Phi| up to ~10 rad, exp(+-u) with |u| <= 11 (relative error ~|u|*2^-24 = 7e-7) and the "
     "centre c = (max g + min g)/2 rounded in f32 (relative error ~|g|*2^-24 on every output: "
     "the cases keep |g| < 100; it cancels in Cbar.Bbar)"},
    {"SSM_CHANNELS", F16, 2e-3, false,
     R_F16 "; the internal math must stay f32 (ops.h); no f16 case has the clamp active, since "
           "s*exp(11) does not fit f16 (SISA.md 3)"},
    {"SSM_CHANNELS", BF16, 1e-2, false, R_BF16 "; the internal math must stay f32 (ops.h)"},
    {"SDPA", F32, 1e-5, false,
     "f32 scores (dot products of d_qk <= 192: ~sqrt(d)*2^-24), online-softmax rescaling with "
     "f32 exp, and an f32 P.V sum over Tk keys (~sqrt(Tk)*2^-24 = 1.4e-6 at 512); form B adds "
     "exp(gq - gk) with |gq - gk| < ~50 (~3e-6 relative on the decayed term)"},
    {"SDPA", F16, 2e-3, false, R_F16 "; scores and accumulation must be f32 (ops.h)"},
    {"SDPA", BF16, 1e-2, false, R_BF16 "; scores and accumulation must be f32 (ops.h)"},

    /* ---- level 1 ---- */
    {"IDENTITY", F32, 2e-5, false,
     "device chain SSM_DECAY -> SSM_CHANNELS(A) -> AUGMENT -> MATMUL -> SCALE in f32 against "
     "the fp64 host construction from the raw inputs: the sum of the f32 rows of the chain "
     "(prefix sums, exp(+-u), rotation, a dot product of d_h + d_s terms), normalised over the "
     "causal entries j <= i of the T x T score matrix"},
    {"FORMS_AGREE", F32, 2e-5, false,
     "form A SDPA (AUGMENTED channels) vs form B SDPA (FACTORED channels + gq/gk) on the same "
     "device, clamp inactive: mathematically equal (SISA.md 2); two f32 SDPA errors (1e-5 each)"},
    {"FORMS_DIFFER", F32, 1e-3, false,
     "clamp active (max|g - c| > 11): forms A and B must differ by MORE than this normalised "
     "amount — if they agree, the device's form A does not apply the clamp of the published "
     "definition (the cases are built so the clamped pairs move the output by > 1e-2)"},

    /* ---- golden tie-out (tests/test_golden.c): the engine against the fp64 PyTorch reference
     * of tests/golden, end to end (not one op against the oracle on the same inputs) ---- */
    {"GOLDEN_INTERMEDIATE", F32, 1e-5, false,
     "an f32 forward vs the fp64 reference, node by node (xn, q, k, g, s*Cbar, s*Bbar, Qhat, "
     "Khat, Y, out): the f32 errors of every op before it add up (a few 1e-7 per op, cf. the "
     "MATMUL/RMS_NORM rows); the fp32 PyTorch paths measure <= 1.6e-6 on these cases "
     "(tests/golden/README.md), the SSM ones carrying the f32 prefix sum of g times exp(+-u); "
     "1e-5 is the README's bound and still fails a wrong weight, head or pairing by orders"},
    {"GOLDEN_LOGITS", F32, 1e-5, false,
     "f32 forward vs the fp64 reference logits: the fp32 PyTorch paths measure 2-4e-7 "
     "(tests/golden/README.md); 1e-5 is the promise of an f32 engine path (SISA.md 3: f32 "
     "~1e-6..1e-5)"},
    {"GOLDEN_FORM_B", F32, 1e-5, false,
     "KV-cache decode (form B: no c, no clamp) vs the fp64 form-B logits (golden_formB), or vs "
     "the form-A logits where the clamp is inactive (A = B to ~1e-16 in fp64): the same f32 "
     "forward error as GOLDEN_LOGITS plus exp(gq - gk) (see the SDPA row); a clamped case "
     "differs from form A by ~1e-1, so a decode that applied the clamp fails by orders"},
    {"GOLDEN_CLAMP_U", F32, 1e-4, false,
     "ABSOLUTE error of the clamp report max_t |g_t - c| (values up to ~22 here) vs the fp64 "
     "clamp_max_abs_u: g is an f32 prefix sum (~T*|g|*2^-24 worst), (max - min)/2 in f32; "
     "1e-4 (tests/golden/README.md) keeps the active/inactive verdict at 11 unambiguous"},
};

const conform_threshold *conform_threshold_find(const char *key, sisa_dtype dt) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].dtype == dt && strcmp(table[i].key, key) == 0) return &table[i];
    return NULL;
}

const conform_threshold *conform_threshold_table(int *n) {
    *n = (int)(sizeof table / sizeof table[0]);
    return table;
}
