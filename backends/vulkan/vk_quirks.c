/*
 * vk_quirks.c — vendor/driver workarounds and the environment kill switches.
 *
 * The table matches on vendor ID, driver ID and a driver-version range and turns features off or
 * changes a tuning choice, with the reason written next to it. Every entry must say what breaks
 * (or what is slow) and on which driver; an entry nobody can justify is deleted.
 * SISA_VK_NO_WORKAROUNDS=1 ignores the table (to check whether an entry is still needed).
 *
 * Kill switches (each turns one optional path off, for bisecting and for users with a broken
 * driver): SISA_VK_NO_COOPMAT, SISA_VK_NO_F16, SISA_VK_NO_BF16, SISA_VK_NO_16BIT_STORAGE,
 * SISA_VK_NO_SUBALLOC, SISA_VK_NO_UMA; SISA_VK_NO_PIPELINE_CACHE is read by vk_pipeline.c.
 * SISA_VK_NO_COOPMAT_SDPA=1 keeps attention off the cooperative-matrix kernel (on by default where
 * the device has cooperative matrices); SISA_VK_NO_BF16_COOPMAT=1 keeps bf16 MATMUL/SDPA operands off the matrix units
 * (they are converted to f16 there).
 */
#include <stdio.h>
#include <string.h>

#include "vk_internal.h"

typedef struct vk_quirk_entry {
    uint32_t vendor;      /* 0 = any */
    VkDriverId driver;    /* 0 = any */
    uint32_t min_version, max_version; /* driverVersion range, inclusive; 0/0 = any */
    unsigned flags;
    const char *why;
} vk_quirk_entry;

static const vk_quirk_entry quirk_table[] = {
    /* llvmpipe runs invocations as SIMD lanes on the CPU: a 128x128 register-blocked tile
     * (64 accumulators per invocation) compiles for seconds and runs no faster than 64x64. */
    {0, VK_DRIVER_ID_MESA_LLVMPIPE, 0, 0, VK_QUIRK_SMALL_TILES,
     "llvmpipe: small matmul tiles (large register tiles only slow compilation on a CPU)"},
};

static void note(vk_device *d, const char *what) {
    size_t l = strlen(d->notes);
    snprintf(d->notes + l, sizeof d->notes - l, "%s%s", l ? "; " : "", what);
}

void sisa_vk_apply_quirks(vk_device *d) {
    d->quirks = 0;
    if (!sisa_vk_env_flag("SISA_VK_NO_WORKAROUNDS")) {
        for (size_t i = 0; i < sizeof quirk_table / sizeof quirk_table[0]; i++) {
            const vk_quirk_entry *q = &quirk_table[i];
            if (q->vendor && q->vendor != d->props.vendorID) continue;
            if (q->driver && q->driver != d->driver_id) continue;
            if ((q->min_version || q->max_version) &&
                (d->props.driverVersion < q->min_version || d->props.driverVersion > q->max_version))
                continue;
            d->quirks |= q->flags;
            note(d, q->why);
        }
    }
    if (d->quirks & VK_QUIRK_NO_COOPMAT) d->coopmat = false;
    if (!d->coopmat) d->coopmat_sdpa = false;
    if (d->quirks & VK_QUIRK_NO_F16) d->storage16 = false;

    if (sisa_vk_env_flag("SISA_VK_NO_COOPMAT") && d->coopmat) {
        d->coopmat = false;
        note(d, "SISA_VK_NO_COOPMAT: cooperative matrices off");
    }
    if (sisa_vk_env_flag("SISA_VK_NO_COOPMAT_SDPA") && d->coopmat_sdpa) {
        d->coopmat_sdpa = false;
        note(d, "SISA_VK_NO_COOPMAT_SDPA: attention on the scalar flash kernel");
    }
    if (sisa_vk_env_flag("SISA_VK_NO_BF16_COOPMAT") && d->coopmat_bf16) {
        d->coopmat_bf16 = false;
        note(d, "SISA_VK_NO_BF16_COOPMAT: bf16 operands stay on the scalar kernels");
    }
    if (sisa_vk_env_flag("SISA_VK_NO_16BIT_STORAGE") && d->storage16) {
        d->storage16 = false;
        d->coopmat = false;
        note(d, "SISA_VK_NO_16BIT_STORAGE: no f16/bf16 destinations, no coopmat");
    }
    if (sisa_vk_env_flag("SISA_VK_NO_F16")) {
        d->allow_f16 = false;
        d->coopmat = false;
        note(d, "SISA_VK_NO_F16: f16 tensors declined");
    }
    if (sisa_vk_env_flag("SISA_VK_NO_BF16")) {
        d->allow_bf16 = false;
        note(d, "SISA_VK_NO_BF16: bf16 tensors declined");
    }
    if (!d->coopmat) d->coopmat_sdpa = false;
    if (sisa_vk_env_flag("SISA_VK_NO_COOPMAT") || !d->storage16 || !d->allow_f16) d->cm_emulate = false;
    if (d->cm_emulate) note(d, "SISA_VK_COOPMAT=emulate: coopmat MATMUL kernel with emulated matrix units");
    if (sisa_vk_env_flag("SISA_VK_NO_SUBALLOC")) {
        d->suballoc = false;
        note(d, "SISA_VK_NO_SUBALLOC: one allocation per buffer");
    }
    if (sisa_vk_env_flag("SISA_VK_NO_UMA") && d->uma) {
        d->uma = false;
        note(d, "SISA_VK_NO_UMA: staging copies even on unified memory");
    }
}
