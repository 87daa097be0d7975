/*
 * scan.glsl — inclusive prefix sum across the workgroup (Hillis-Steele in shared memory).
 * log2(WG) additions per element, so the rounding error grows with log T instead of T; the carry
 * between chunks is added by the caller with compensated (Kahan) summation.
 */
shared float scan_buf[2][WG_MAX];

float wg_inclusive_scan(float v) {
    uint l = gl_LocalInvocationID.x;
    uint src = 0u;
    scan_buf[0][l] = v;
    barrier();
    for (uint off = 1u; off < gl_WorkGroupSize.x; off <<= 1) {
        float x = scan_buf[src][l];
        if (l >= off) x += scan_buf[src][l - off];
        scan_buf[src ^ 1u][l] = x;
        src ^= 1u;
        barrier();
    }
    float r = scan_buf[src][l];
    barrier();
    return r;
}

/* Kahan step: (sum, comp) += x */
void kahan_add(inout float sum, inout float comp, float x) {
    precise float y = x - comp;
    precise float t = sum + y;
    comp = (t - sum) - y;
    sum = t;
}
