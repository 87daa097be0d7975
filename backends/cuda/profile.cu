/*
 * profile.cu — a kernel that keeps the device busy for a given number of clock cycles. The
 * per-node profile (cuda_profile.c) launches it before each node's start event, so the event is
 * stamped when the device reaches it after the spin, not while the host is still preparing the
 * node's launch: the interval then holds the node's kernels alone.
 */
#include "cuda_kernels.h"

__global__ void k_spin(long long cycles) {
    const long long t0 = clock64();
    while (clock64() - t0 < cycles) {
    }
}

extern "C" cudaError_t sc_launch_spin(long long cycles, cudaStream_t s) {
    k_spin<<<1, 1, 0, s>>>(cycles);
    return cudaGetLastError();
}
