/*
 * test_cuda_mega_plan.c — the persistent decode kernel's schedule (backends/cuda/cuda_mega.c:
 * sc_mega_conflict, sc_mega_schedule), host code only, so it runs without a GPU (CI's stub
 * libcuda). Tasks laid out like two layers of a SISA decode step (the 11 launches of docs/CUDA.md
 * "## Decode", at made-up addresses that never overlap unless the step shares them) must get:
 *   - a barrier exactly where a task reads or overwrites what an earlier task of its phase
 *     writes: per layer [norm+proj] [RoPE, SSM_DECAY] [SSM+AUGMENT] [Phi ADD, K CPY, V CPY]
 *     [SDPA] [W_O+ADD] [norm+gate|up] [SWIGLU+down+ADD] — 8 barriers, 2 x 8 - 1 + 1 for EMBED;
 *   - virtual blocks of a phase's tasks starting after each other's (first);
 *   - every streaming GEMV prefetched once, at a barrier before it, within the byte budget;
 *   - a barrier after every task when asked (SISA_CUDA_MEGA_PHASES=0).
 * And the conflict rule itself on overlapping and strided tensors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_internal.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                           \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* A contiguous tensor at address base (f32 unless dt), shape (1, 1, rows, cols). */
static sc_tensor tens(uintptr_t base, int dt, int64_t rows, int64_t cols) {
    sc_tensor t;
    memset(&t, 0, sizeof t);
    t.p = (void *)base;
    t.dt = dt;
    t.ne[0] = t.ne[1] = 1;
    t.ne[2] = rows;
    t.ne[3] = cols;
    t.nb[3] = 1;
    t.nb[2] = cols;
    t.nb[1] = t.nb[0] = rows * cols;
    return t;
}

/* Columns [c0, c0 + w) of a (rows x ld) f32 matrix at base. */
static sc_tensor cols(uintptr_t base, int64_t rows, int64_t ld, int64_t c0, int64_t w) {
    sc_tensor t = tens(base + (uintptr_t)c0 * 4, SC_F32, rows, w);
    t.nb[2] = ld;
    return t;
}

enum { MB = 1 << 20 };
/* made-up address regions, 256 MB apart */
#define REGION(k) ((uintptr_t)0x100000000ull + (uintptr_t)(k) * 256u * MB)

typedef struct step {
    sc_mega_task t[64];
    int n;
} step;

static sc_mega_task *add(step *s, int kind, int nvb) {
    sc_mega_task *t = &s->t[s->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->nvb = nvb;
    return t;
}

static sc_mega_task *gemv(step *s, int pro, int epi, uintptr_t w, int64_t N, int64_t K) {
    sc_mega_task *t = add(s, SC_MT_GEMV_STREAM, 132);
    t->sub = pro * 2 + epi;
    t->pf_ok = N * K * 2 <= (24 << 20);
    t->u.g.pro = pro;
    t->u.g.epi = epi;
    t->u.g.mm.src[1] = tens(w, SC_BF16, N, K);
    return t;
}

/* Layer l of a SISA step at position p: H = 12 heads, d_h 64, d_s 16, widths as the 152M. */
static void layer(step *s, int l, int p) {
    const uintptr_t arena = REGION(0), weights = REGION(1 + l), cache = REGION(8 + l), resid = REGION(15);
    const uintptr_t P = arena, QK = arena + 1 * MB, QH = arena + 2 * MB, KH = arena + 3 * MB,
                    SCB = arena + 4 * MB, Y = arena + 5 * MB, GU = arena + 6 * MB, XN = arena + 7 * MB;
    const uintptr_t X = resid, H = resid + 4096; /* the two residual slots */
    const uintptr_t KC = cache, VC = cache + 32 * MB, GC = cache + 64 * MB, PHI = cache + 96 * MB;
    const int64_t np = 2624; /* q|k|v|B|C|alpha|theta */
    sc_mega_task *t = gemv(s, SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_NONE, weights, np, 768);
    t->u.g.px = tens(X, SC_F32, 1, 768);
    t->u.g.pw = tens(weights + 100 * MB, SC_F32, 1, 768);
    t->u.g.mm.src[0] = tens(XN, SC_F32, 1, 768);
    t->u.g.mm.dst = tens(P, SC_F32, 1, np);
    t = add(s, SC_MT_ROPE, 6);
    t->u.n.src[0] = cols(P, 1, np, 0, 1536);
    t->u.n.dst = tens(QK, SC_F32, 1, 1536);
    t = add(s, SC_MT_SSM_DECAY, 12);
    t->u.n.src[0] = cols(P, 1, np, 2496, 12);
    t->u.n.src[1] = tens(weights + 101 * MB, SC_F32, 1, 12);
    t->u.n.src[2] = tens(GC + (uintptr_t)(p - 1) * 48, SC_F32, 1, 12);
    t->u.n.dst = tens(GC + (uintptr_t)p * 48, SC_F32, 1, 12);
    t = add(s, SC_MT_SSM_AUGMENT, 12);
    t->u.a.ssm.src[0] = cols(P, 1, np, 2304, 192);
    t->u.a.ssm.src[1] = cols(P, 1, np, 2112, 192);
    t->u.a.ssm.src[2] = cols(P, 1, np, 2508, 96);
    t->u.a.ssm.src[3] = tens(GC + (uintptr_t)p * 48, SC_F32, 1, 12);
    t->u.a.ssm.src[4] = tens(weights + 102 * MB, SC_F32, 1, 12);
    t->u.a.ssm.src[5] = tens(PHI, SC_F32, 1, 96);
    t->u.a.ssm.dst = tens(SCB, SC_F32, 12, 32);
    t->u.a.a_c = tens(QK, SC_F32, 12, 64);
    t->u.a.a_b = tens(QK + 768 * 4, SC_F32, 12, 64);
    t->u.a.out_c = tens(QH, SC_F32, 12, 96);
    t->u.a.out_b = tens(KH, SC_F32, 12, 96);
    t = add(s, SC_MT_ELEMENTWISE, 1); /* Phi += theta, in place */
    t->u.n.src[0] = tens(PHI, SC_F32, 1, 96);
    t->u.n.src[1] = cols(P, 1, np, 2508, 96);
    t->u.n.dst = tens(PHI, SC_F32, 1, 96);
    t = add(s, SC_MT_ELEMENTWISE, 12); /* K cache row p */
    t->u.n.src[0] = tens(KH, SC_F32, 12, 96);
    t->u.n.dst = tens(KC + (uintptr_t)p * 12 * 96 * 4, SC_F32, 12, 96);
    t = add(s, SC_MT_ELEMENTWISE, 12); /* V cache row p */
    t->u.n.src[0] = cols(P, 1, np, 1536, 768);
    t->u.n.dst = tens(VC + (uintptr_t)p * 12 * 64 * 4, SC_F32, 12, 64);
    t = add(s, SC_MT_DECODE_ATTN, 132);
    t->gx = 12;
    t->i[0] = 11;
    t->u.n.src[0] = tens(QH, SC_F32, 12, 96);
    t->u.n.src[1] = tens(KC, SC_F32, 256 * 12, 96);
    t->u.n.src[2] = tens(VC, SC_F32, 256 * 12, 64);
    t->u.n.src[3] = tens(GC + (uintptr_t)p * 48, SC_F32, 1, 12);
    t->u.n.src[4] = tens(GC, SC_F32, 256, 12);
    t->u.n.dst = tens(Y, SC_F32, 1, 768);
    t->p[0] = (void *)REGION(14);
    t->p[1] = (void *)(REGION(14) + 128 * MB);
    t = gemv(s, SC_GEMV_PRO_NONE, SC_GEMV_EPI_ADD, weights + 10 * MB, 768, 768);
    t->u.g.mm.src[0] = tens(Y, SC_F32, 1, 768);
    t->u.g.res = tens(X, SC_F32, 1, 768);
    t->u.g.out = tens(H, SC_F32, 1, 768);
    t = gemv(s, SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_NONE, weights + 20 * MB, 5888, 768);
    t->u.g.px = tens(H, SC_F32, 1, 768);
    t->u.g.pw = tens(weights + 103 * MB, SC_F32, 1, 768);
    t->u.g.mm.dst = tens(GU, SC_F32, 1, 5888);
    t = gemv(s, SC_GEMV_PRO_SWIGLU, SC_GEMV_EPI_ADD, weights + 40 * MB, 768, 2944);
    t->u.g.px = cols(GU, 1, 5888, 0, 2944);
    t->u.g.pw = cols(GU, 1, 5888, 2944, 2944);
    t->u.g.res = tens(H, SC_F32, 1, 768);
    t->u.g.out = tens(X, SC_F32, 1, 768);
}

static void build(step *s, int p) {
    s->n = 0;
    sc_mega_task *t = add(s, SC_MT_ELEMENTWISE, 1); /* EMBED */
    t->u.n.src[0] = tens(REGION(7), SC_BF16, 50277, 768);
    t->u.n.src[1] = tens(REGION(7) + 128 * MB, SC_I32, 1, 1);
    t->u.n.dst = tens(REGION(15), SC_F32, 1, 768);
    layer(s, 0, p);
    layer(s, 1, p);
}

static void check_conflicts(void) {
    sc_mega_task a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.kind = b.kind = SC_MT_ELEMENTWISE;
    a.u.n.dst = tens(REGION(0), SC_F32, 4, 16);
    b.u.n.src[0] = tens(REGION(0) + 4 * 64, SC_F32, 1, 16); /* just past a's last row */
    CHECK(!sc_mega_conflict(&a, &b), "adjacent tensors conflict");
    b.u.n.src[0] = tens(REGION(0) + 4 * 64 - 4, SC_F32, 1, 16); /* a's last element */
    CHECK(sc_mega_conflict(&a, &b) && sc_mega_conflict(&b, &a), "read of a written element: no conflict");
    b.u.n.src[0] = a.u.n.dst; /* both read only */
    a.u.n.src[0] = a.u.n.dst;
    memset(&a.u.n.dst, 0, sizeof a.u.n.dst);
    CHECK(!sc_mega_conflict(&a, &b), "two readers conflict");
    b.u.n.dst = tens(REGION(9), SC_F32, 4, 16);
    CHECK(!sc_mega_conflict(&a, &b), "a write elsewhere conflicts");
    b.u.n.dst.nb[2] = -16; /* a negative stride: assumed to touch everything */
    CHECK(sc_mega_conflict(&a, &b), "negative stride ignored");
}

int main(void) {
    static step s;
    check_conflicts();
    build(&s, 100);
    int32_t pf0[SC_MEGA_PF];
    const int grid = 132;
    const int barriers = sc_mega_schedule(s.t, s.n, grid, false, (int64_t)24 << 20, pf0);
    CHECK(barriers == 16, "%d barriers for EMBED + 2 layers (want 1 + 2 x 8 - 1 = 16)", barriers);
    /* after EMBED; per layer after proj, decay, augment, V CPY, SDPA, W_O, gate|up, down */
    static const int want_barrier[12] = {0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1};
    for (int i = 0; i < s.n; i++) {
        const int w = i == 0 ? 1 : want_barrier[1 + (i - 1) % 11];
        const int want = i == s.n - 1 ? 0 : w;
        CHECK(s.t[i].barrier == want, "task %d (kind %d): barrier %d, want %d", i, s.t[i].kind, s.t[i].barrier,
              want);
    }
    /* a phase's tasks start where the previous one's blocks end: decay after RoPE's 6, K CPY after Phi's 1 */
    CHECK(s.t[2].first == 0 && s.t[3].first == 6, "RoPE/SSM_DECAY first %d %d", s.t[2].first, s.t[3].first);
    CHECK(s.t[5].first == 0 && s.t[6].first == 1 && s.t[7].first == 13, "Phi/K/V first %d %d %d", s.t[5].first,
          s.t[6].first, s.t[7].first);
    /* prefetch: every streaming GEMV exactly once, at or after the start and before it runs */
    int seen[64] = {0};
    for (int q = 0; q < SC_MEGA_PF && pf0[q] >= 0; q++) seen[pf0[q]]++;
    for (int i = 0; i < s.n; i++)
        for (int q = 0; q < SC_MEGA_PF && s.t[i].pf[q] >= 0; q++) {
            const int u = s.t[i].pf[q];
            CHECK(u > i && s.t[i].barrier, "task %d prefetches task %d (barrier %d)", i, u, s.t[i].barrier);
            seen[u]++;
        }
    for (int i = 0; i < s.n; i++)
        CHECK(seen[i] == (s.t[i].kind == SC_MT_GEMV_STREAM), "task %d (kind %d) prefetched %d times", i,
              s.t[i].kind, seen[i]);
    CHECK(pf0[0] == 1, "the first projection is prefetched at the start (pf0[0] = %d)", pf0[0]);
    /* a budget that holds one GEMV at a time: never two prefetched and unused */
    build(&s, 100);
    sc_mega_schedule(s.t, s.n, grid, false, 1, pf0);
    int outstanding = pf0[0] >= 0;
    CHECK(pf0[1] < 0, "budget 1 byte: two prefetched at the start");
    for (int i = 0; i < s.n; i++) {
        if (s.t[i].kind == SC_MT_GEMV_STREAM) outstanding = 0;
        for (int q = 0; q < SC_MEGA_PF && s.t[i].pf[q] >= 0; q++) outstanding++;
        CHECK(outstanding <= 1, "budget 1 byte: %d prefetched and unused after task %d", outstanding, i);
    }
    /* every task alone */
    build(&s, 100);
    const int all = sc_mega_schedule(s.t, s.n, grid, true, 0, pf0);
    CHECK(all == s.n - 1 && pf0[0] == -1, "every: %d barriers for %d tasks, pf0 %d", all, s.n, pf0[0]);
    for (int i = 0; i < s.n; i++) CHECK(s.t[i].first == 0, "every: task %d first %d", i, s.t[i].first);
    /* the update check: the K cache write moved to the next row stays independent of its phase
     * mates; moved onto what one of them reads (V CPY's source) it must conflict */
    build(&s, 100);
    sc_mega_schedule(s.t, s.n, grid, false, 0, pf0);
    sc_mega_task moved = s.t[6];
    moved.u.n.dst.p = (char *)s.t[6].u.n.dst.p + 12 * 96 * 4;
    CHECK(!sc_mega_conflict(&moved, &s.t[5]) && !sc_mega_conflict(&moved, &s.t[7]), "next K row conflicts");
    moved.u.n.dst.p = s.t[7].u.n.src[0].p;
    CHECK(sc_mega_conflict(&moved, &s.t[7]), "K CPY over V CPY's source: no conflict");
    if (failures) printf("%d FAILURES\n", failures);
    else printf("persistent-kernel schedule checks passed (%d tasks, %d barriers)\n", s.n, barriers);
    return failures ? 1 : 0;
}
