/*
 * fast_pool.c — the CPU fast path's thread pool: persistent pthreads that take task indices
 * from a shared atomic counter (dynamic scheduling: causal attention and ragged GEMM edges
 * have uneven tasks), with the calling thread working as thread 0.
 *
 * Idle workers spin briefly (a graph runs node after node, so the next job usually comes
 * within microseconds) and then sleep on a condition variable: an idle engine burns no CPU.
 * A job is over when every worker has checked in for that generation, so a worker can never
 * miss one or run one twice. A run from inside one of the pool's own tasks executes inline
 * (no deadlock), and runs from several caller threads are serialised by a mutex.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"
#include "fast_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* ~20-50 µs of polling before sleeping; short enough not to steal a core for long. */
#define SPIN_ITERS 4000

/* Scratch kept by the pool between runs (see fast_internal.h): per thread, SISA_FAST_SLOTS
 * buffers that only grow, so the kernels of a forward do not mmap/munmap (and page-fault) their
 * packing buffers on every node. */
typedef struct scratch_buf {
    void *p;
    size_t size;
} scratch_buf;

struct sisa_cpu_pool {
    int n; /* threads including the caller */
    pthread_t *threads;
    struct worker_arg *args;

    pthread_mutex_t run_mu; /* one job at a time */
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;

    /* the current job: written before gen is bumped (release), read after (acquire) */
    sisa_fast_task fn;
    void *arg;
    int64_t n_items;
    atomic_llong next;
    atomic_int pending;     /* workers that have not finished the current generation */
    atomic_ullong gen;
    atomic_bool stop;

    scratch_buf (*scratch)[SISA_FAST_SLOTS]; /* [n][SISA_FAST_SLOTS] */
};

struct worker_arg {
    sisa_cpu_pool *pool;
    int tid;
};


static _Thread_local const sisa_cpu_pool *tl_pool; /* the pool whose task this thread runs */
static _Thread_local int tl_tid;                    /* ... as which thread index */

static void drain(sisa_cpu_pool *p, int tid) {
    const sisa_cpu_pool *outer = tl_pool;
    int outer_tid = tl_tid;
    tl_pool = p;
    tl_tid = tid;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n_items) break;
        p->fn(i, tid, p->arg);
    }
    tl_pool = outer;
    tl_tid = outer_tid;
}

static void *worker_main(void *varg) {
    struct worker_arg *wa = varg;
    sisa_cpu_pool *p = wa->pool;
    unsigned long long seen = 0;
    for (;;) {
        unsigned long long g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int s = 0; g == seen && s < SPIN_ITERS && !atomic_load(&p->stop); s++) {
            cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv_start, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (g == seen) return NULL; /* stop requested with no new job */
        seen = g;
        drain(p, wa->tid);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

sisa_status sisa_cpu_pool_new(int n_threads, sisa_cpu_pool **out) {
    *out = NULL;
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 1024) n_threads = 1024;
    sisa_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return sisa_err(SISA_OUT_OF_MEMORY, "cpu pool: out of host memory");
    p->n = n_threads;
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    if (!p->scratch) {
        free(p);
        return sisa_err(SISA_OUT_OF_MEMORY, "cpu pool: out of host memory");
    }
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->stop, false);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads, sizeof *p->threads);
        p->args = calloc((size_t)n_threads, sizeof *p->args);
        if (!p->threads || !p->args) {
            sisa_cpu_pool_free(p);
            return sisa_err(SISA_OUT_OF_MEMORY, "cpu pool: out of host memory");
        }
        for (int t = 1; t < n_threads; t++) {
            p->args[t] = (struct worker_arg){.pool = p, .tid = t};
            int rc = pthread_create(&p->threads[t], NULL, worker_main, &p->args[t]);
            if (rc != 0) {
                p->n = t; /* the ones started so far are joined by free */
                sisa_cpu_pool_free(p);
                return sisa_err(SISA_INTERNAL, "cpu pool: pthread_create failed for thread %d of %d (error %d)",
                                t, n_threads, rc);
            }
        }
    }
    *out = p;
    return SISA_OK;
}

void sisa_cpu_pool_free(sisa_cpu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n && p->threads; t++) pthread_join(p->threads[t], NULL);
    pthread_cond_destroy(&p->cv_start);
    pthread_cond_destroy(&p->cv_done);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    free(p->threads);
    free(p->args);
    for (int t = 0; t < p->n && p->scratch; t++)
        for (int k = 0; k < SISA_FAST_SLOTS; k++) free(p->scratch[t][k].p);
    free(p->scratch);
    free(p);
}

void *sisa_fast_scratch(sisa_cpu_pool *p, int tid, int slot, size_t bytes) {
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (!p) return aligned_alloc(64, bytes);
    if (tid < 0 || tid >= p->n || slot < 0 || slot >= SISA_FAST_SLOTS) return NULL;
    scratch_buf *b = &p->scratch[tid][slot];
    if (b->size < bytes) {
        free(b->p);
        b->size = 0;
        b->p = aligned_alloc(64, bytes);
        if (!b->p) return NULL;
        b->size = bytes;
    }
    return b->p;
}

void sisa_fast_scratch_done(sisa_cpu_pool *p, void *ptr) {
    if (!p) free(ptr);
}

int sisa_cpu_pool_size(const sisa_cpu_pool *p) { return p ? p->n : 1; }
int sisa_fast_pool_threads(const sisa_cpu_pool *p) { return p ? p->n : 1; }

void sisa_fast_pool_run(sisa_cpu_pool *p, int64_t n, sisa_fast_task fn, void *arg) {
    if (n <= 0) return;
    /* Inline: a nested run from one of this pool's tasks (keeping that thread's index, so
     * per-thread scratch stays private), no pool, one thread, or one task. */
    if (p && tl_pool == p) {
        for (int64_t i = 0; i < n; i++) fn(i, tl_tid, arg);
        return;
    }
    if (!p || p->n == 1 || n == 1) {
        for (int64_t i = 0; i < n; i++) fn(i, 0, arg);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    p->fn = fn;
    p->arg = arg;
    p->n_items = n;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);

    drain(p, 0);

    for (int s = 0; atomic_load_explicit(&p->pending, memory_order_acquire) != 0 && s < SPIN_ITERS; s++)
        cpu_relax();
    if (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->run_mu);
}

/* The public form: fn(i, arg) without the thread index. */
struct plain_task {
    void (*fn)(int64_t i, void *arg);
    void *arg;
};

static void plain_adapter(int64_t i, int tid, void *arg) {
    (void)tid;
    struct plain_task *pt = arg;
    pt->fn(i, pt->arg);
}

void sisa_cpu_pool_run(sisa_cpu_pool *p, int64_t n, void (*fn)(int64_t i, void *arg), void *arg) {
    struct plain_task pt = {fn, arg};
    sisa_fast_pool_run(p, n, plain_adapter, &pt);
}
