/*
 * test_sample.c — the sampler (runtime/sample.h): greedy is argmax; top-k = 1 is greedy; the
 * empirical distribution of temperature sampling matches softmax(logits / T); top-p keeps the
 * smallest set; one seed gives one sequence; the repetition penalty lowers repeated tokens.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sample.h"

static int failures = 0;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL line %d: ", __LINE__);                                                    \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

enum { V = 10 };
static const float L[V] = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, 2.0f, -3.0f, 1.0f, 0.25f, -0.5f};

static sisa_sampler make(float temp, int k, float p, float rep, uint64_t seed) {
    sisa_sampler_params sp;
    sisa_sampler_params_default(&sp);
    sp.temperature = temp;
    sp.top_k = k;
    sp.top_p = p;
    sp.repeat_penalty = rep;
    sp.seed = seed;
    sisa_sampler s;
    if (sisa_sampler_init(&s, &sp, V) != SISA_OK) printf("init: %s\n", sisa_last_error());
    return s;
}

/* Top-k by partial selection over a large vocabulary with many ties keeps exactly the first k of
 * the (value desc, id asc) order, with softmax probabilities over them; greedy over a large
 * vocabulary is the first index of the maximum, and the first NaN when there is one. */
static void big_vocab(void) {
    enum { BV = 5003 };
    static float lg[BV];
    static double pr[BV];
    uint64_t x = 12345;
    for (int j = 0; j < BV; j++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        lg[j] = (float)((x >> 40) % 37) * 0.25f - 4.0f; /* 37 distinct values: many ties */
    }
    const int ks[] = {1, 2, 7, 100, 1000, BV - 1};
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        const int k = ks[t];
        sisa_sampler_params sp;
        sisa_sampler_params_default(&sp);
        sp.top_k = k;
        sisa_sampler b;
        if (sisa_sampler_init(&b, &sp, BV) != SISA_OK) {
            CHECK(0, "init: %s", sisa_last_error());
            return;
        }
        sisa_sampler_probs(&b, lg, NULL, 0, pr);
        /* the reference: rank of each id = how many ids come before it in the order */
        int kept = 0, wrong = 0;
        double z = 0, mx = -1e30;
        for (int j = 0; j < BV; j++) mx = lg[j] > mx ? lg[j] : mx;
        for (int j = 0; j < BV; j++) {
            int rank = 0;
            for (int i = 0; i < BV; i++) rank += lg[i] > lg[j] || (lg[i] == lg[j] && i < j);
            if (rank < k) z += exp((double)lg[j] - mx);
        }
        for (int j = 0; j < BV; j++) {
            int rank = 0;
            for (int i = 0; i < BV; i++) rank += lg[i] > lg[j] || (lg[i] == lg[j] && i < j);
            const double want = rank < k ? exp((double)lg[j] - mx) / z : 0.0;
            kept += pr[j] > 0;
            wrong += fabs(pr[j] - want) > 1e-12;
        }
        CHECK(kept == k && wrong == 0, "top-k %d over %d ids: kept %d, %d wrong", k, BV, kept, wrong);
        sisa_sampler_free(&b);
    }
    sisa_sampler_params sp;
    sisa_sampler_params_default(&sp);
    sp.temperature = 0;
    sisa_sampler g;
    if (sisa_sampler_init(&g, &sp, BV) == SISA_OK) {
        int first = 0;
        for (int j = 1; j < BV; j++) first = lg[j] > lg[first] ? j : first;
        CHECK(sisa_sampler_sample(&g, lg, NULL, 0) == first, "greedy over %d ids", BV);
        const float keep = lg[4000];
        lg[4000] = NAN;
        lg[4500] = NAN;
        CHECK(sisa_sampler_sample(&g, lg, NULL, 0) == 4000, "greedy with NaNs: the first NaN");
        lg[4000] = keep;
        sisa_sampler_free(&g);
    }
}

int main(void) {
    big_vocab();
    /* greedy = argmax (first on ties: ids 1 and 5 both hold 2.0) */
    sisa_sampler s = make(0, 0, 1, 1, 1);
    CHECK(sisa_sampler_sample(&s, L, NULL, 0) == 1, "greedy should pick id 1");
    sisa_sampler_free(&s);
    /* top-k = 1 is greedy at any temperature, any seed */
    for (uint64_t seed = 0; seed < 50; seed++) {
        s = make(1.7f, 1, 1, 1, seed);
        int32_t id = sisa_sampler_sample(&s, L, NULL, 0);
        CHECK(id == 1, "top-k 1 gave %d (seed %llu)", id, (unsigned long long)seed);
        sisa_sampler_free(&s);
    }
    /* temperature: empirical vs softmax(L/T) over 200000 draws. Each frequency's standard error
     * is sqrt(p(1-p)/n) <= 0.0012; the bound 0.006 is 5 of them. Also chi-square with 9 dof:
     * 27.88 is its 0.999 quantile. */
    const float T = 0.7f;
    const int n = 200000;
    double want[V], z = 0, cnt[V] = {0};
    for (int j = 0; j < V; j++) z += want[j] = exp((double)L[j] / T - 2.0 / T);
    for (int j = 0; j < V; j++) want[j] /= z;
    s = make(T, 0, 1, 1, 42);
    for (int i = 0; i < n; i++) cnt[sisa_sampler_sample(&s, L, NULL, 0)]++;
    sisa_sampler_free(&s);
    double maxd = 0, chi2 = 0;
    for (int j = 0; j < V; j++) {
        double f = cnt[j] / n, d = fabs(f - want[j]);
        if (d > maxd) maxd = d;
        chi2 += (cnt[j] - n * want[j]) * (cnt[j] - n * want[j]) / (n * want[j]);
    }
    printf("temperature %.1f: max |freq - softmax| = %.5f (bound 0.006), chi2 = %.2f (9 dof, "
           "bound 27.88)\n", (double)T, maxd, chi2);
    CHECK(maxd < 0.006, "temperature frequencies off by %g", maxd);
    CHECK(chi2 < 27.88, "chi-square %g", chi2);
    /* top-p keeps the smallest prefix with mass >= p: at T = 1 the sorted probabilities are
     * ids 1, 5 (0.254 each), 3 (0.154), 7 (0.093)... p = 0.6 needs {1, 5, 3} (0.662) */
    double pr[V];
    s = make(1, 0, 0.6f, 1, 3);
    sisa_sampler_probs(&s, L, NULL, 0, pr);
    int kept = 0;
    for (int j = 0; j < V; j++) kept += pr[j] > 0;
    CHECK(kept == 3 && pr[1] > 0 && pr[5] > 0 && pr[3] > 0, "top-p 0.6 kept %d ids", kept);
    CHECK(fabs(pr[1] + pr[5] + pr[3] - 1) < 1e-12, "top-p set renormalised");
    for (int i = 0; i < 2000; i++) {
        int32_t id = sisa_sampler_sample(&s, L, NULL, 0);
        CHECK(id == 1 || id == 5 || id == 3, "top-p drew %d", id);
        if (!(id == 1 || id == 5 || id == 3)) break;
    }
    sisa_sampler_free(&s);
    /* p = 0.5: {1, 5} has 0.508 >= 0.5, and no single id reaches it */
    s = make(1, 0, 0.5f, 1, 3);
    sisa_sampler_probs(&s, L, NULL, 0, pr);
    kept = 0;
    for (int j = 0; j < V; j++) kept += pr[j] > 0;
    CHECK(kept == 2, "top-p 0.5 kept %d ids, want 2", kept);
    sisa_sampler_free(&s);
    /* top-k = 3 keeps ids 1, 5, 3 */
    s = make(1, 3, 1, 1, 3);
    sisa_sampler_probs(&s, L, NULL, 0, pr);
    CHECK(pr[1] > 0 && pr[5] > 0 && pr[3] > 0 && pr[7] == 0, "top-k 3 set");
    sisa_sampler_free(&s);
    /* same seed, same sequence; another seed, another one */
    int32_t a[64], b[64], c[64];
    sisa_sampler s1 = make(1, 0, 1, 1, 123), s2 = make(1, 0, 1, 1, 123), s3 = make(1, 0, 1, 1, 124);
    int same_ab = 1, same_ac = 1;
    for (int i = 0; i < 64; i++) {
        a[i] = sisa_sampler_sample(&s1, L, NULL, 0);
        b[i] = sisa_sampler_sample(&s2, L, NULL, 0);
        c[i] = sisa_sampler_sample(&s3, L, NULL, 0);
        same_ab &= a[i] == b[i];
        same_ac &= a[i] == c[i];
    }
    CHECK(same_ab, "same seed gave different sequences");
    CHECK(!same_ac, "different seeds gave the same 64 draws");
    sisa_sampler_free(&s1);
    sisa_sampler_free(&s2);
    sisa_sampler_free(&s3);
    /* repetition penalty: a repeated positive logit is divided, a negative one multiplied */
    int32_t hist[3] = {1, 1, 2};
    s = make(0, 0, 1, 2.0f, 0);
    CHECK(sisa_sampler_sample(&s, L, hist, 3) == 5, "penalised greedy should move from 1 to 5");
    sisa_sampler_free(&s);
    s = make(1, 0, 1, 2.0f, 0);
    double p0[V];
    sisa_sampler_probs(&s, L, hist, 3, pr);
    sisa_sampler_free(&s);
    s = make(1, 0, 1, 1.0f, 0);
    sisa_sampler_probs(&s, L, hist, 3, p0);
    sisa_sampler_free(&s);
    CHECK(pr[1] < p0[1] && pr[2] < p0[2], "penalty should lower ids 1 and 2: %g<%g, %g<%g", pr[1],
          p0[1], pr[2], p0[2]);
    CHECK(pr[5] > p0[5], "unpenalised id 5 should gain");
    /* bad parameters are an error, not a crash */
    sisa_sampler_params bad;
    sisa_sampler_params_default(&bad);
    bad.top_k = -1;
    CHECK(sisa_sampler_init(&s, &bad, V) == SISA_INVALID_ARG, "top_k -1 accepted");
    printf(failures ? "%d FAILURES\n" : "all sampler checks passed\n", failures);
    return failures ? 1 : 0;
}
