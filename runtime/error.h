/*
 * error.h — how the library reports failure: a status code plus a thread-local message.
 *
 * Every failing path calls sisa_err(status, fmt, ...) once, where the facts are known (file,
 * tensor, backend, native code), and returns what it returns. Callers that add context use
 * sisa_err_prefix so the message reads outermost-first ("load model/: model.safetensors: ...").
 */
#ifndef SISA_ERROR_H
#define SISA_ERROR_H

#include "sisa.h"

#if defined(__GNUC__)
#define SISA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SISA_PRINTF(a, b)
#endif

/* Set the thread's last error and return st. */
sisa_status sisa_err(sisa_status st, const char *fmt, ...) SISA_PRINTF(2, 3);
/* Prepend context to the current message ("ctx: old message") and return st. */
sisa_status sisa_err_prefix(sisa_status st, const char *fmt, ...) SISA_PRINTF(2, 3);
void sisa_err_clear(void);

/* Propagate a failing status. */
#define SISA_TRY(expr)                                                                             \
    do {                                                                                           \
        sisa_status sisa_try_st_ = (expr);                                                         \
        if (sisa_try_st_ != SISA_OK) return sisa_try_st_;                                          \
    } while (0)

#endif
