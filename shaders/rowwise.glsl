/*
 * rowwise.glsl — the push constants of the element- and row-wise ops (CPY, ADD, SCALE, SWIGLU,
 * AUGMENT, EMBED, ROPE, RMS_NORM, SOFTMAX, ARGMAX).
 *
 * Work is indexed in the destination's index space: rows are dst dims 0..2 flattened, the row is
 * dim 3. Each source comes with a base element and one stride per DESTINATION dimension (0 where
 * it broadcasts), so ADD's broadcast, RMS_NORM's weight and EMBED's ids need no special case.
 * A dispatch covers rows [row0, row0 + rows) — the host splits tensors larger than
 * maxStorageBufferRange into such row blocks.
 */
layout(push_constant) uniform PC {
    uint row0;   /* first destination row of this dispatch */
    uint n;      /* work items of this dispatch (elements, pairs or rows: per shader) */
    uint D1, D2, D3; /* destination dims 1..3 */
    uint a_base, a_s0, a_s1, a_s2, a_s3;
    uint b_base, b_s0, b_s1, b_s2, b_s3;
    uint d_base; /* destination base element (contiguous) */
    float f0;
    uint u0, u1, u2, u3;
} pc;

/* dst row -> (i0, i1, i2) */
uvec3 row_index(uint row) {
    uint i2 = row % pc.D2;
    uint r = row / pc.D2;
    return uvec3(r / pc.D1, r % pc.D1, i2);
}

uint a_at(uvec3 i, uint c) { return pc.a_base + i.x * pc.a_s0 + i.y * pc.a_s1 + i.z * pc.a_s2 + c * pc.a_s3; }
uint b_at(uvec3 i, uint c) { return pc.b_base + i.x * pc.b_s0 + i.y * pc.b_s1 + i.z * pc.b_s2 + c * pc.b_s3; }
