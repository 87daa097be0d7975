/*
 * test_param_count.c — every published configuration of SISA.md §4, by name, against a parameter
 * count computed here independently from the layer formula, plus the literal totals SISA.md
 * states (Transformer-152M 151,878,144; SISA-152M d_s=32 151,878,432; 746,520 SSM parameters per
 * layer at 152M, d_s=32).
 *
 * It also checks the d_ff of the table against the rule SISA.md gives for it: the FFN is cut so
 * that 3·d·(d_ff_T - d_ff) ~ the SSM parameters per layer. The table is consistent with
 * rounding to the NEAREST integer (369M d_s=16 and 64 are one below "rounded down"); the engine
 * uses the table (docs/MODEL.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "sisa.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                           \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* The table of SISA.md §4, written out again (independently of config.c). */
static const struct {
    const char *scale;
    uint64_t d, H, L, dff_T;
    uint64_t ds[4], dff[4];
} table[] = {
    {"50m", 512, 8, 6, 2048, {16, 32, 64, 128}, {1939, 1832, 1619, 1192}},
    {"152m", 768, 12, 12, 3072, {16, 32, 64, 128}, {2908, 2748, 2428, 1788}},
    {"369m", 1024, 16, 24, 2944, {16, 32, 64, 128}, {2725, 2512, 2085, 1232}},
};

static uint64_t ssm_per_layer(uint64_t d, uint64_t H, uint64_t ds) {
    /* W_B + W_C, alpha_proj weight + bias, theta_proj, lambda_raw */
    return 2 * d * H * ds + d * H + H + d * H * ds / 2 + H;
}

static uint64_t expected_total(uint64_t d, uint64_t H, uint64_t L, uint64_t dff, uint64_t ds) {
    const uint64_t V = 50277;
    uint64_t attn = 4 * d * d, norms = 2 * d, ffn = 3 * d * dff;
    uint64_t layer = attn + norms + ffn + (ds ? ssm_per_layer(d, H, ds) : 0);
    return V * d /* tied embedding, once */ + L * layer + d /* final norm */;
}

static void check_name(const char *name, uint64_t d, uint64_t H, uint64_t L, uint64_t dff,
                       uint64_t ds, uint64_t *total_out) {
    sisa_config cfg;
    sisa_status st = sisa_config_from_name(name, &cfg);
    CHECK(st == SISA_OK, "%s: from_name: %s", name, sisa_last_error());
    if (st != SISA_OK) return;
    CHECK(cfg.vocab_size == 50277 && cfg.head_dim == 64 && cfg.max_seq_len == 2048 &&
              cfg.eos_token_id == 0,
          "%s: vocab/head_dim/max_seq_len/eos", name);
    CHECK((uint64_t)cfg.d_model == d && (uint64_t)cfg.n_heads == H && (uint64_t)cfg.n_layers == L &&
              (uint64_t)cfg.d_ff == dff && (uint64_t)cfg.d_ssm == ds,
          "%s: got d %lld H %lld L %lld d_ff %lld d_s %lld", name, (long long)cfg.d_model,
          (long long)cfg.n_heads, (long long)cfg.n_layers, (long long)cfg.d_ff,
          (long long)cfg.d_ssm);
    CHECK(sisa_config_validate(&cfg) == SISA_OK, "%s: validate: %s", name, sisa_last_error());
    uint64_t n = 0, want = expected_total(d, H, L, dff, ds);
    CHECK(sisa_model_param_count(&cfg, &n) == SISA_OK, "%s: count: %s", name, sisa_last_error());
    CHECK(n == want, "%s: %" PRIu64 " parameters, expected %" PRIu64, name, n, want);
    CHECK(sisa_config_ssm_params_per_layer(&cfg) == (ds ? ssm_per_layer(d, H, ds) : 0),
          "%s: SSM per layer", name);
    printf("%-18s d %4" PRIu64 " H %2" PRIu64 " L %2" PRIu64 " d_s %3" PRIu64 " d_ff %4" PRIu64
           "  %11" PRIu64 " params\n",
           name, d, H, L, ds, dff, n);
    if (total_out) *total_out = n;
}

int main(void) {
    uint64_t t152 = 0, s152_32 = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char name[64];
        uint64_t total_T = 0;
        snprintf(name, sizeof name, "transformer-%s", table[i].scale);
        check_name(name, table[i].d, table[i].H, table[i].L, table[i].dff_T, 0, &total_T);
        if (i == 1) t152 = total_T;
        for (int j = 0; j < 4; j++) {
            uint64_t d = table[i].d, H = table[i].H, ds = table[i].ds[j], dff = table[i].dff[j];
            snprintf(name, sizeof name, "sisa-%s-ds%" PRIu64, table[i].scale, ds);
            uint64_t total = 0;
            check_name(name, d, H, table[i].L, dff, ds, &total);
            if (i == 1 && ds == 32) s152_32 = total;
            /* the FFN cut compensates the SSM parameters: nearest integer */
            uint64_t ssm = ssm_per_layer(d, H, ds), cut = 3 * d * (table[i].dff_T - dff);
            uint64_t diff = cut > ssm ? cut - ssm : ssm - cut;
            CHECK(2 * diff <= 3 * d, "%s: 3·d·(d_ff_T - d_ff) = %" PRIu64 " vs SSM %" PRIu64, name,
                  cut, ssm);
            /* a SISA model is within one FFN row-triple of its Transformer */
            uint64_t dt = total > total_T ? total - total_T : total_T - total;
            CHECK(dt <= 3 * d * table[i].L, "%s: total %" PRIu64 " far from the Transformer's %" PRIu64,
                  name, total, total_T);
        }
    }
    /* SISA.md's literal numbers */
    sisa_config c;
    CHECK(sisa_config_from_name("sisa-152m-ds32", &c) == SISA_OK, "sisa-152m-ds32");
    CHECK(sisa_config_ssm_params_per_layer(&c) == 746520, "152M d_s=32: %" PRIu64 " SSM params per layer, SISA.md says 746,520",
          sisa_config_ssm_params_per_layer(&c));
    CHECK(ssm_per_layer(768, 12, 32) == 746520, "formula: 152M d_s=32 per layer");
    CHECK(t152 == 151878144ull, "Transformer-152M: %" PRIu64 ", SISA.md says 151,878,144", t152);
    CHECK(s152_32 == 151878432ull, "SISA-152M d_s=32: %" PRIu64 ", SISA.md says 151,878,432", s152_32);

    /* test-sized names exist and validate */
    const char *small[] = {"tiny", "tiny-transformer", "small", "small-transformer"};
    for (int i = 0; i < 4; i++) {
        uint64_t n = 0;
        CHECK(sisa_config_from_name(small[i], &c) == SISA_OK && sisa_model_param_count(&c, &n) == SISA_OK,
              "%s: %s", small[i], sisa_last_error());
        printf("%-18s %11" PRIu64 " params\n", small[i], n);
    }
    CHECK(sisa_config_from_name("sisa-152m-ds24", &c) == SISA_INVALID_ARG, "unknown d_s accepted");
    CHECK(sisa_config_from_name("gpt2", &c) == SISA_INVALID_ARG, "unknown name accepted");

    if (failures) printf("%d failure(s)\n", failures);
    else printf("all parameter counts match SISA.md §4\n");
    return failures ? 1 : 0;
}
