/*
 * sample.h — turning a row of logits into the next token: greedy, temperature, top-k, top-p,
 * repetition penalty, with the sampler's own seeded PRNG (xoshiro256**, seeded by splitmix64) so
 * a seed gives the same sequence on every platform.
 *
 * Order of the transforms (each optional):
 *   1. repetition penalty on the ids in the history window (CTRL-style: a positive logit is
 *      divided by r, a negative one multiplied by r — both lower the token for r > 1)
 *   2. temperature <= 0: argmax (first index on ties) and stop here
 *   3. logits / temperature, sorted descending; top-k keeps the k largest
 *   4. softmax over what is kept; top-p keeps the smallest prefix whose probability is >= p
 *   5. one uniform draw from the renormalised distribution
 */
#ifndef SISA_SAMPLE_H
#define SISA_SAMPLE_H

#include "sisa.h"

typedef struct sisa_rng {
    uint64_t s[4];
} sisa_rng;

void sisa_rng_seed(sisa_rng *r, uint64_t seed);
uint64_t sisa_rng_next(sisa_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double sisa_rng_uniform(sisa_rng *r);

typedef struct sisa_sampler {
    sisa_sampler_params p;
    int64_t V;
    sisa_rng rng;
    float *work;    /* V logits after the penalty */
    int32_t *idx;   /* V ids, sorted by work */
    double *prob;   /* V probabilities of the sorted ids */
    unsigned char *seen; /* V flags, all 0 between calls: ids the penalty already lowered */
} sisa_sampler;

sisa_status sisa_sampler_init(sisa_sampler *s, const sisa_sampler_params *p, int64_t vocab);
void sisa_sampler_free(sisa_sampler *s);
/* Next token from logits[V]; history = the ids the penalty applies to (may be NULL/0). */
int32_t sisa_sampler_sample(sisa_sampler *s, const float *logits, const int32_t *history,
                            size_t n_history);
/* The distribution step 5 draws from (after 1-4), as probabilities per id into out[V] (tests). */
void sisa_sampler_probs(sisa_sampler *s, const float *logits, const int32_t *history,
                        size_t n_history, double *out);

#endif
