/*
 * ref_norm.c — the oracle's row reductions: RMS_NORM, SOFTMAX, ARGMAX (ops.h).
 *
 * Each works on rows (the innermost dimension) independently: a statistic of the row (mean
 * square, max and sum of exponentials, index of the largest) in fp64, then the row's outputs.
 * Non-finite values follow the definitions literally and stay visible: a NaN anywhere in a
 * softmax row makes the whole row NaN, and ARGMAX points at the first NaN.
 */
#include "ref.h"

/* RMS_NORM: dst[..,i] = x[..,i] / sqrt(mean_j x[..,j]^2 + eps) * w[i]. */
sisa_status sisa_ref_rms_norm(const sisa_tensor *node) {
    const sisa_tensor *x = node->src[0], *w = node->src[1];
    const int64_t D = x->shape[3];
    const double eps = node->fparams[0];
    for (int64_t i0 = 0; i0 < x->shape[0]; i0++)
        for (int64_t i1 = 0; i1 < x->shape[1]; i1++)
            for (int64_t i2 = 0; i2 < x->shape[2]; i2++) {
                double sumsq = 0.0;
                for (int64_t j = 0; j < D; j++) {
                    double v = ref_get(x, i0, i1, i2, j);
                    sumsq += v * v;
                }
                double inv_rms = 1.0 / sqrt(sumsq / (double)D + eps);
                for (int64_t j = 0; j < D; j++)
                    ref_set(node, i0, i1, i2, j,
                            ref_get(x, i0, i1, i2, j) * inv_rms * ref_get(w, 0, 0, 0, j));
            }
    return SISA_OK;
}

/* SOFTMAX: dst = exp(x - max) / sum exp(x - max) over the row; a row of -inf only gives 0s. */
sisa_status sisa_ref_softmax(const sisa_tensor *node) {
    const sisa_tensor *x = node->src[0];
    const int64_t N = x->shape[3];
    for (int64_t i0 = 0; i0 < x->shape[0]; i0++)
        for (int64_t i1 = 0; i1 < x->shape[1]; i1++)
            for (int64_t i2 = 0; i2 < x->shape[2]; i2++) {
                double max = -INFINITY;
                bool has_nan = false;
                for (int64_t j = 0; j < N; j++) {
                    double v = ref_get(x, i0, i1, i2, j);
                    if (isnan(v)) has_nan = true;
                    if (v > max) max = v;
                }
                if (max == -INFINITY && !has_nan) { /* nothing to attend to: zeros, not 0/0 */
                    for (int64_t j = 0; j < N; j++) ref_set(node, i0, i1, i2, j, 0.0);
                    continue;
                }
                double sum = 0.0;
                for (int64_t j = 0; j < N; j++) sum += exp(ref_get(x, i0, i1, i2, j) - max);
                for (int64_t j = 0; j < N; j++)
                    ref_set(node, i0, i1, i2, j, exp(ref_get(x, i0, i1, i2, j) - max) / sum);
            }
    return SISA_OK;
}

/* ARGMAX: index of the row's largest element, the first on ties; NaN beats everything, so the
 * first NaN of a row is its answer. */
sisa_status sisa_ref_argmax(const sisa_tensor *node) {
    const sisa_tensor *x = node->src[0];
    const int64_t N = x->shape[3];
    for (int64_t i0 = 0; i0 < x->shape[0]; i0++)
        for (int64_t i1 = 0; i1 < x->shape[1]; i1++)
            for (int64_t i2 = 0; i2 < x->shape[2]; i2++) {
                int64_t best = 0;
                double best_v = ref_get(x, i0, i1, i2, 0);
                for (int64_t j = 1; j < N && !isnan(best_v); j++) {
                    double v = ref_get(x, i0, i1, i2, j);
                    if (isnan(v) || v > best_v) {
                        best = j;
                        best_v = v;
                    }
                }
                ref_set(node, i0, i1, i2, 0, (double)best);
            }
    return SISA_OK;
}
