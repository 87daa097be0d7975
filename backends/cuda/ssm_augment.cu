/*
 * ssm_augment.cu — SSM_CHANNELS fused with its two AUGMENT consumers (ops.h; SISA.md §1):
 *   sCB = [s·Cbar | s·Bbar],  Qhat = [q | s·Cbar | 0 ...],  Khat = [k | s·Bbar | 0 ...]
 * in one pass: Qhat/Khat are written from registers/shared memory instead of re-reading sCB (an
 * output whose AUGMENT must run unfused, see cuda_fuse.c, is left to it: out.p NULL).
 * The unfused path is ssm.cu + elementwise.cu; this kernel computes the same definitions:
 *   Phi_t = Phi0 + sum_{k<=t} theta_k, form A: u = clamp(g - (max g + min g)/2, -L, L), form B: u = 0,
 *   s·Cbar = s·Rot(Phi)(e^u Cs), s·Bbar = s·Rot(Phi)(e^-u Bs), s = d_h^(1/4)·sqrt(softplus(lambda_raw)).
 *
 * Block = one (b, h) and a chunk of CH time steps (CH·(d_s/2) = 1024 pairs), so a 2048-token
 * prefill runs B·H·16 blocks instead of B·H·d_s/2 long serial scans. The prefix sum of theta:
 * each block adds up theta over the steps before its chunk (the carry; fp64, read from L2 —
 * theta is small) and scans its own chunk in shared memory (fp64 Hillis-Steele); the angle is
 * reduced mod 2π in fp64 before an fp32 sincos (the accuracy rule of ops.h). Form A's centre
 * is a min/max over the whole sequence of g, recomputed per block (T floats, L2-resident).
 * The rows of Qhat/Khat are then written whole: 16-byte vectors (8 bf16/f16 values: q/k copied,
 * the SSM channels from shared memory, zeros) when dtypes and alignment allow, else per element.
 */
#include "cuda_mega.h"
#include "ssm_augment.cuh"

template <bool VEC>
__global__ void __launch_bounds__(SA_THREADS) k_ssm_augment(sc_ssm_augment f) {
    sc_pdl_wait();
    __shared__ sa_smem sm;
    ssm_augment_body<VEC>(f, blockIdx.x, sm);
}

static bool vec_ok(const sc_tensor &a, const sc_tensor &o, int ds) {
    if (a.dt != o.dt || (o.dt != SC_BF16 && o.dt != SC_F16)) return false;
    if (a.ne[3] % 8 || ds % 8 || o.ne[3] % 8 || a.nb[3] != 1) return false;
    if (((uintptr_t)a.p % 16) || ((uintptr_t)o.p % 16)) return false;
    for (int i = 0; i < 3; i++)
        if (a.nb[i] % 8) return false;
    return true;
}

extern "C" int sc_ssm_augment_takes(const sc_ssm_augment *f) {
    const int64_t H = f->ssm.src[4].ne[3];
    if (H < 1 || f->ssm.src[0].ne[3] % H) return 0;
    const int64_t ds = f->ssm.src[0].ne[3] / H;
    return ds >= 2 && ds % 2 == 0 && ds / 2 <= SA_THREADS && ds <= 2 * SA_PAIRS;
}

/* The launch: blocks (0: nothing to do, -1: too many), the chunk of time steps per block and
 * whether both outputs take the 16-byte rows. */
static int64_t sa_plan(const sc_ssm_augment *f, int *chunk, bool *vec) {
    const sc_node &n = f->ssm;
    const int64_t H = n.src[4].ne[3], B = n.src[0].ne[1], T = n.src[0].ne[2];
    const int ds = (int)(n.src[0].ne[3] / H), half = ds / 2;
    if (B == 0 || T == 0) return 0;
    int ch = SA_PAIRS / half;
    if (ch > 256) ch = 256;
    *chunk = ch;
    const int64_t blocks = B * H * ((T + ch - 1) / ch);
    if (blocks > 0x7fffffff) return -1;
    *vec = (!f->out_c.p || vec_ok(f->a_c, f->out_c, ds)) && (!f->out_b.p || vec_ok(f->a_b, f->out_b, ds));
    return blocks;
}

extern "C" cudaError_t sc_launch_ssm_augment(sc_ssm_augment *f, cudaStream_t s) {
    bool vec = false;
    const int64_t blocks = sa_plan(f, &f->chunk, &vec);
    if (blocks == 0) return cudaSuccess;
    if (blocks < 0) return cudaErrorInvalidConfiguration;
    return vec ? sc_launch(k_ssm_augment<true>, dim3((unsigned)blocks), dim3(SA_THREADS), 0, s, *f)
               : sc_launch(k_ssm_augment<false>, dim3((unsigned)blocks), dim3(SA_THREADS), 0, s, *f);
}

/* The persistent kernel's task: the same blocks, chunk and row writes (block size SA_THREADS). */
extern "C" int sc_mega_ssm_augment(const sc_ssm_augment *f, sc_mega_task *t) {
    bool vec = false;
    t->u.a = *f;
    const int64_t blocks = sa_plan(f, &t->u.a.chunk, &vec);
    if (blocks < 0) return 0;
    t->kind = SC_MT_SSM_AUGMENT;
    t->sub = vec;
    t->nvb = (int32_t)blocks;
    t->smem = sizeof(sa_smem);
    return 1;
}
