/*
 * reduce.glsl — workgroup reductions through shared memory (portable: no subgroup size or
 * subgroup-arithmetic assumptions). WG is the workgroup size (a power of two).
 */
shared float red_f[WG_MAX];
shared uint red_u[WG_MAX];

float wg_sum(float v) {
    uint l = gl_LocalInvocationID.x;
    red_f[l] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1) {
        if (l < s) red_f[l] += red_f[l + s];
        barrier();
    }
    float r = red_f[0];
    barrier();
    return r;
}
