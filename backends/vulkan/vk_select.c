/*
 * vk_select.c — THE kernel-selection function of the Vulkan backend.
 *
 * supports_op (vk_device.c) and the dispatcher (vk_stream.c) both call sisa_vk_select, so what
 * the scheduler is told and what graph_compute does cannot drift apart. The common checks live
 * here (dtypes against the device's storage features and kill switches, element-aligned strides
 * and offsets); each op family then picks its shader, specialization and tiles and checks that one
 * work unit fits a storage binding.
 */
#include <stdio.h>
#include <string.h>

#include "vk_internal.h"

void sisa_vk_spec_dtypes(const sisa_tensor *n, uint32_t spec[VK_SPEC_N]) {
    memset(spec, 0, VK_SPEC_N * sizeof spec[0]);
    /* the shaders use SISA's dtype numbering: f32 0, f16 1, bf16 2 (i32 outputs have their own) */
    spec[0] = n->dtype == SISA_I32 ? 0 : (uint32_t)n->dtype;
    for (int i = 0; i < SISA_MAX_SRC; i++)
        spec[1 + i] = n->src[i] && n->src[i]->dtype != SISA_I32 ? (uint32_t)n->src[i]->dtype : 0;
}

static bool dtype_ok(const vk_device *d, const sisa_tensor *t, bool dst, const char *role, char *reason) {
    switch (t->dtype) {
    case SISA_F32:
    case SISA_I32: return true; /* where an op allows i32 is checked by sisa_node_check */
    case SISA_F16:
    case SISA_BF16: {
        bool f16 = t->dtype == SISA_F16;
        if (f16 ? !d->allow_f16 : !d->allow_bf16) {
            snprintf(reason, SISA_REASON_LEN, "%s '%s' is %s, disabled by %s", role, t->name,
                     sisa_dtype_name(t->dtype), f16 ? "SISA_VK_NO_F16" : "SISA_VK_NO_BF16");
            return false;
        }
        if (dst && !d->storage16) {
            snprintf(reason, SISA_REASON_LEN,
                     "%s '%s' is %s but the device has no 16-bit storage (storageBuffer16BitAccess)%s",
                     role, t->name, sisa_dtype_name(t->dtype),
                     sisa_vk_env_flag("SISA_VK_NO_16BIT_STORAGE") ? " (SISA_VK_NO_16BIT_STORAGE)" : "");
            return false;
        }
        return true;
    }
    default:
        snprintf(reason, SISA_REASON_LEN, "%s '%s' has dtype %s, which the Vulkan backend does not store",
                 role, t->name, sisa_dtype_name(t->dtype));
        return false;
    }
}

static bool layout_ok(const sisa_tensor *t, const char *role, char *reason) {
    int64_t es = (int64_t)sisa_dtype_size(t->dtype);
    for (int i = 0; i < 4; i++) {
        if (t->stride[i] < 0 || t->stride[i] % es || t->stride[i] / es >= ((int64_t)1 << 32)) {
            snprintf(reason, SISA_REASON_LEN, "%s '%s' stride %lld of dim %d is not a whole number of "
                     "elements below 2^32", role, t->name, (long long)t->stride[i], i);
            return false;
        }
    }
    for (const sisa_tensor *v = t; v->view_src; v = v->view_src) {
        if (v->view_offset % (size_t)es) {
            snprintf(reason, SISA_REASON_LEN, "%s '%s' is a view at byte offset %zu, not element-aligned",
                     role, t->name, v->view_offset);
            return false;
        }
    }
    return true;
}

bool sisa_vk_select(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason) {
    memset(k, 0, sizeof *k);
    if (!dtype_ok(d, n, true, "destination", reason) || !layout_ok(n, "destination", reason)) return false;
    if (!sisa_tensor_is_contiguous(n)) {
        snprintf(reason, SISA_REASON_LEN, "destination '%s' is not contiguous", n->name);
        return false;
    }
    for (int i = 0; i < SISA_MAX_SRC; i++) {
        const sisa_tensor *s = n->src[i];
        if (!s) continue;
        char role[16];
        snprintf(role, sizeof role, "source %d", i);
        if (!dtype_ok(d, s, false, role, reason) || !layout_ok(s, role, reason)) return false;
    }
    bool ok;
    switch (n->op) {
    case SISA_OP_CPY:
    case SISA_OP_EMBED:
    case SISA_OP_RMS_NORM:
    case SISA_OP_ROPE:
    case SISA_OP_ADD:
    case SISA_OP_SCALE:
    case SISA_OP_SOFTMAX:
    case SISA_OP_ARGMAX:
    case SISA_OP_SWIGLU:
    case SISA_OP_AUGMENT: ok = sisa_vk_select_rowwise(d, n, k, reason); break;
    case SISA_OP_MATMUL: ok = sisa_vk_select_matmul(d, n, k, reason); break;
    case SISA_OP_SSM_DECAY:
    case SISA_OP_SSM_CHANNELS: ok = sisa_vk_select_ssm(d, n, k, reason); break;
    case SISA_OP_SDPA: ok = sisa_vk_select_sdpa(d, n, k, reason); break;
    default:
        snprintf(reason, SISA_REASON_LEN, "op %s has no Vulkan kernel", sisa_op_name(n->op));
        return false;
    }
    if (!ok) return false;
    unsigned needs = sisa_vk_shader_needs(k->shader);
    if ((needs & VK_NEEDS_16BIT) && !d->storage16) {
        snprintf(reason, SISA_REASON_LEN, "kernel '%s' needs 16-bit storage", sisa_vk_shader_name(k->shader));
        return false;
    }
    if ((needs & VK_NEEDS_COOPMAT) && !d->coopmat) {
        snprintf(reason, SISA_REASON_LEN, "kernel '%s' needs cooperative matrices", sisa_vk_shader_name(k->shader));
        return false;
    }
    return true;
}

sisa_status sisa_vk_record(vk_rec *r, const sisa_tensor *n, const vk_kernel *k) {
    switch (k->kind) {
    case VK_K_ROWWISE:
    case VK_K_EMBED:
    case VK_K_ROPE: return sisa_vk_record_rowwise(r, n, k);
    case VK_K_MATMUL:
    case VK_K_MATMUL_COOPMAT: return sisa_vk_record_matmul(r, n, k);
    case VK_K_SSM_DECAY:
    case VK_K_SSM_CHANNELS: return sisa_vk_record_ssm(r, n, k);
    case VK_K_SDPA: return sisa_vk_record_sdpa(r, n, k);
    default: return sisa_vk_node_err(r, VK_SUCCESS, "no record function for the selected kernel");
    }
}

const char *sisa_vk_kernel_name(const sisa_device *sd, const sisa_tensor *n) {
    char reason[SISA_REASON_LEN];
    vk_kernel k;
    if (!sd || !sd->ctx || !sisa_vk_select(vk_dev(sd), n, &k, reason)) return "(unsupported)";
    return sisa_vk_shader_name(k.shader);
}
