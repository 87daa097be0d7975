/*
 * sample.c — the sampler (sample.h).
 */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sisa_rng_seed(sisa_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sisa_rng_next(sisa_rng *r) { /* xoshiro256** */
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double sisa_rng_uniform(sisa_rng *r) { return (double)(sisa_rng_next(r) >> 11) * 0x1.0p-53; }

void sisa_sampler_params_default(sisa_sampler_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->repeat_penalty = 1.0f;
}

sisa_status sisa_sampler_init(sisa_sampler *s, const sisa_sampler_params *p, int64_t V) {
    memset(s, 0, sizeof *s);
    if (!p) return sisa_err(SISA_INVALID_ARG, "sampler: NULL params");
    if (V < 1) return sisa_err(SISA_INVALID_ARG, "sampler: vocabulary of %lld", (long long)V);
    if (!(p->temperature == p->temperature) || p->top_k < 0 || !(p->top_p >= 0) ||
        !(p->repeat_penalty > 0) || p->repeat_last_n < 0)
        return sisa_err(SISA_INVALID_ARG,
                        "sampler: bad parameters (temperature %g, top_k %d, top_p %g, "
                        "repeat_penalty %g, repeat_last_n %d): need top_k >= 0, top_p >= 0, "
                        "repeat_penalty > 0, repeat_last_n >= 0",
                        (double)p->temperature, p->top_k, (double)p->top_p,
                        (double)p->repeat_penalty, p->repeat_last_n);
    s->p = *p;
    s->V = V;
    sisa_rng_seed(&s->rng, p->seed);
    s->work = malloc((size_t)V * sizeof *s->work);
    s->idx = malloc((size_t)V * sizeof *s->idx);
    s->prob = malloc((size_t)V * sizeof *s->prob);
    s->seen = calloc((size_t)V, 1);
    if (!s->work || !s->idx || !s->prob || !s->seen) {
        sisa_sampler_free(s);
        return sisa_err(SISA_OUT_OF_MEMORY, "sampler: out of host memory (vocabulary %lld)", (long long)V);
    }
    return SISA_OK;
}

void sisa_sampler_free(sisa_sampler *s) {
    free(s->work);
    free(s->idx);
    free(s->prob);
    free(s->seen);
    s->work = NULL;
    s->idx = NULL;
    s->prob = NULL;
    s->seen = NULL;
}

static void penalise(sisa_sampler *s, const float *logits, const int32_t *h, size_t n) {
    memcpy(s->work, logits, (size_t)s->V * sizeof *s->work);
    const float r = s->p.repeat_penalty;
    if (r == 1.0f || !h) return;
    /* each id once, however often it repeats: `seen` marks them (and is cleared after, so a call
     * costs O(history), not O(V)) */
    for (size_t i = 0; i < n; i++) {
        int32_t id = h[i];
        if (id < 0 || id >= s->V || s->seen[id]) continue;
        s->seen[id] = 1;
        s->work[id] = s->work[id] > 0 ? s->work[id] / r : s->work[id] * r;
    }
    for (size_t i = 0; i < n; i++)
        if (h[i] >= 0 && h[i] < s->V) s->seen[h[i]] = 0;
}

/* First index of the largest element; a NaN counts as larger than everything (the first NaN
 * wins). Two branch-free passes the compiler vectorises (max and any-NaN over 8 lanes), then one
 * scan for the first index holding the answer: ~10x faster than one branchy pass at V = 50k. */
static int32_t argmax(const float *x, int64_t V) {
    float m[8];
    int nan[8];
    for (int l = 0; l < 8; l++) {
        m[l] = -INFINITY;
        nan[l] = 0;
    }
    int64_t j = 0;
    for (; j + 8 <= V; j += 8)
        for (int l = 0; l < 8; l++) {
            const float v = x[j + l];
            m[l] = v > m[l] ? v : m[l];
            nan[l] |= v != v;
        }
    float mx = -INFINITY;
    int any_nan = 0;
    for (int l = 0; l < 8; l++) {
        mx = m[l] > mx ? m[l] : mx;
        any_nan |= nan[l];
    }
    for (; j < V; j++) {
        mx = x[j] > mx ? x[j] : mx;
        any_nan |= x[j] != x[j];
    }
    for (int64_t k = 0; k < V; k++)
        if (any_nan ? x[k] != x[k] : x[k] == mx) return (int32_t)k;
    return 0; /* every element -inf: the first */
}

static const float *sort_key;
static int by_logit_desc(const void *a, const void *b) {
    float x = sort_key[*(const int32_t *)a], y = sort_key[*(const int32_t *)b];
    if (x > y) return -1;
    if (x < y) return 1;
    return *(const int32_t *)a - *(const int32_t *)b; /* stable: lower id first */
}

static int cmp_ids(int32_t a, int32_t b) { return by_logit_desc(&a, &b); }

/* Reorder ids[0..n) so that its first k entries are the k first in by_logit_desc order (any
 * order among them): quickselect, median-of-three pivots. */
static void select_first(int32_t *ids, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        int32_t a = ids[lo], b = ids[mid], c = ids[hi], piv;
        if (cmp_ids(a, b) < 0) piv = cmp_ids(b, c) < 0 ? b : (cmp_ids(a, c) < 0 ? c : a);
        else piv = cmp_ids(a, c) < 0 ? a : (cmp_ids(b, c) < 0 ? c : b);
        int64_t i = lo, j = hi;
        while (i <= j) { /* Hoare partition around the pivot's value */
            while (i < hi && cmp_ids(ids[i], piv) < 0) i++; /* bounds: NaN keys order badly */
            while (j > lo && cmp_ids(ids[j], piv) > 0) j--;
            if (i <= j) {
                const int32_t t = ids[i];
                ids[i] = ids[j];
                ids[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else return;
    }
}

/* Steps 3-4: fills idx[0..n) and prob[0..n) (sorted, normalised); returns n kept. */
static int64_t distribution(sisa_sampler *s) {
    const int64_t V = s->V;
    int64_t k = s->p.top_k > 0 && s->p.top_k < V ? s->p.top_k : V;
    for (int64_t j = 0; j < V; j++) s->idx[j] = (int32_t)j;
    sort_key = s->work;
    /* top-k: select the k first ids of the (value desc, id asc) order, then sort only those —
     * the order is total, so they are exactly the full sort's first k */
    if (k < V) select_first(s->idx, V, k);
    qsort(s->idx, (size_t)k, sizeof *s->idx, by_logit_desc);
    const double invT = 1.0 / (double)s->p.temperature, mx = (double)s->work[s->idx[0]] * invT;
    double sum = 0;
    for (int64_t j = 0; j < k; j++) sum += s->prob[j] = exp((double)s->work[s->idx[j]] * invT - mx);
    for (int64_t j = 0; j < k; j++) s->prob[j] /= sum;
    if (s->p.top_p > 0 && s->p.top_p < 1) {
        double c = 0;
        int64_t n = 0;
        while (n < k) {
            c += s->prob[n++];
            if (c >= (double)s->p.top_p) break;
        }
        k = n;
        for (int64_t j = 0; j < k; j++) s->prob[j] /= c;
    }
    return k;
}

int32_t sisa_sampler_sample(sisa_sampler *s, const float *logits, const int32_t *history,
                            size_t n_history) {
    if (!logits) return 0;
    penalise(s, logits, history, n_history);
    if (!(s->p.temperature > 0)) return argmax(s->work, s->V);
    int64_t k = distribution(s);
    double u = sisa_rng_uniform(&s->rng), c = 0;
    for (int64_t j = 0; j < k; j++) {
        c += s->prob[j];
        if (u < c) return s->idx[j];
    }
    return s->idx[k - 1]; /* u in the rounding gap at the top */
}

void sisa_sampler_probs(sisa_sampler *s, const float *logits, const int32_t *history,
                        size_t n_history, double *out) {
    memset(out, 0, (size_t)s->V * sizeof *out);
    penalise(s, logits, history, n_history);
    if (!(s->p.temperature > 0)) {
        out[argmax(s->work, s->V)] = 1.0;
        return;
    }
    int64_t k = distribution(s);
    for (int64_t j = 0; j < k; j++) out[s->idx[j]] = s->prob[j];
}
