/*
 * cuda_cudnn_stub.c — built instead of cuda_cudnn.c when cuDNN was not found at configure time:
 * the cuDNN SDPA path is absent, and says so; SDPA runs on the backend's own flash kernel.
 */
#include <stdio.h>

#include "cuda_internal.h"
#include "error.h"

void sc_cudnn_init(sc_device *d) {
    d->cudnn = NULL;
    snprintf(d->cudnn_reason, sizeof d->cudnn_reason, "not built (cuDNN not found at configure time)");
}

void sc_cudnn_free(sc_device *d) { (void)d; }

bool sc_cudnn_sdpa_accepts(sc_device *d, const sisa_tensor *node, char *reason) {
    (void)node;
    snprintf(reason, SISA_REASON_LEN, "%s", d->cudnn_reason);
    return false;
}

sisa_status sc_cudnn_sdpa_run(sc_stream *s, const sisa_tensor *node, const sc_node *n) {
    (void)s; (void)node; (void)n;
    return sisa_err(SISA_UNSUPPORTED, "cuDNN SDPA is not built into this library");
}
