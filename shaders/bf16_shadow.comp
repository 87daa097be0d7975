#version 450
/*
 * The f16 shadow of a constant bf16 MATMUL weight (backends/vulkan/vk_shadow.c): word i of the
 * destination = the bf16 pair of source word i converted by bf16_to_f16.glsl, the conversion
 * matmul_coopmat.comp applies at every slice otherwise. Run once per weight (and again after the
 * weight is written); bf16 and f16 are both 2 bytes, so the shadow mirrors the source's bytes and
 * any view of the weight reads it with the same strides. Both operands are bound as raw words
 * (no 16-bit storage needed); a dispatch covers words [0, n) of its bindings.
 */
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "common.glsl"
#include "bf16_to_f16.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint src[]; };
layout(binding = 6, std430) writeonly buffer D { uint dst[]; };
layout(push_constant) uniform PC { uint n; } pc;

void main() {
    uint i = sisa_group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i < pc.n) dst[i] = bf16x2_to_f16(src[i]);
}
