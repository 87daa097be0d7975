/* error.c — thread-local last-error message (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SISA_ERR_LEN 2048
static _Thread_local char last_error[SISA_ERR_LEN];

const char *sisa_last_error(void) { return last_error; }

void sisa_err_clear(void) { last_error[0] = '\0'; }

sisa_status sisa_err(sisa_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

sisa_status sisa_err_prefix(sisa_status st, const char *fmt, ...) {
    char old[SISA_ERR_LEN];
    memcpy(old, last_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof last_error)
        snprintf(last_error + n, sizeof last_error - (size_t)n, ": %s", old);
    return st;
}

const char *sisa_status_name(sisa_status st) {
    switch (st) {
    case SISA_OK: return "OK";
    case SISA_INVALID_ARG: return "INVALID_ARG";
    case SISA_BAD_FILE: return "BAD_FILE";
    case SISA_UNSUPPORTED: return "UNSUPPORTED";
    case SISA_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case SISA_DEVICE_LOST: return "DEVICE_LOST";
    case SISA_COMPILE_FAILED: return "COMPILE_FAILED";
    case SISA_INTERNAL: return "INTERNAL";
    }
    return "UNKNOWN_STATUS";
}

const char *sisa_version(void) { return SISA_VERSION_STRING; }
