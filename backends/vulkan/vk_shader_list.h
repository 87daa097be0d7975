/*
 * vk_shader_list.h — every embedded SPIR-V module: X-macro rows
 *   SISA_VK_SHADER(enum id, name, source file base, variant, needs)
 * Variant f32 is built with -DOUT_F32, variant out16 with -DOUT_16 (f16/bf16 destination, needs
 * 16-bit storage). A shader with both variants lists f32 first and out16 right after it
 * (vk_variant() relies on that order). shaders/meson.build builds the same list.
 */
SISA_VK_SHADER(VK_SH_CPY, "cpy", cpy, f32, 0)
SISA_VK_SHADER(VK_SH_CPY_16, "cpy.out16", cpy, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_ADD, "add", add, f32, 0)
SISA_VK_SHADER(VK_SH_ADD_16, "add.out16", add, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_SCALE, "scale", scale, f32, 0)
SISA_VK_SHADER(VK_SH_SCALE_16, "scale.out16", scale, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_SWIGLU, "swiglu", swiglu, f32, 0)
SISA_VK_SHADER(VK_SH_SWIGLU_16, "swiglu.out16", swiglu, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_AUGMENT, "augment", augment, f32, 0)
SISA_VK_SHADER(VK_SH_AUGMENT_16, "augment.out16", augment, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_EMBED, "embed", embed, f32, 0)
SISA_VK_SHADER(VK_SH_EMBED_16, "embed.out16", embed, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_ROPE, "rope", rope, f32, 0)
SISA_VK_SHADER(VK_SH_ROPE_16, "rope.out16", rope, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_RMS_NORM, "rms_norm", rms_norm, f32, 0)
SISA_VK_SHADER(VK_SH_RMS_NORM_16, "rms_norm.out16", rms_norm, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_SOFTMAX, "softmax", softmax, f32, 0)
SISA_VK_SHADER(VK_SH_SOFTMAX_16, "softmax.out16", softmax, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_ARGMAX, "argmax", argmax, f32, 0)
SISA_VK_SHADER(VK_SH_SSM_DECAY, "ssm_decay", ssm_decay, f32, 0)
SISA_VK_SHADER(VK_SH_SSM_CHANNELS, "ssm_channels", ssm_channels, f32, 0)
SISA_VK_SHADER(VK_SH_SSM_CHANNELS_16, "ssm_channels.out16", ssm_channels, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_SDPA, "sdpa", sdpa, f32, 0)
SISA_VK_SHADER(VK_SH_SDPA_16, "sdpa.out16", sdpa, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_MATMUL, "matmul", matmul, f32, 0)
SISA_VK_SHADER(VK_SH_MATMUL_16, "matmul.out16", matmul, out16, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_MATMUL_CM, "matmul_coopmat", matmul_coopmat, f32, VK_NEEDS_COOPMAT | VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_MATMUL_CM_16, "matmul_coopmat.out16", matmul_coopmat, out16, VK_NEEDS_COOPMAT | VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_MATMUL_CM_EMU, "matmul_coopmat.emu", matmul_coopmat, emu_f32, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_MATMUL_CM_EMU_16, "matmul_coopmat.emu.out16", matmul_coopmat, emu_out16, VK_NEEDS_16BIT)
/* f16 shadows of constant bf16 weights (vk_shadow.c); only beside matmul_coopmat, whose devices
 * have shaderFloat16 enabled (coopmat or SISA_VK_COOPMAT=emulate) */
SISA_VK_SHADER(VK_SH_BF16_SHADOW, "bf16_shadow", bf16_shadow, f32, 0)
SISA_VK_SHADER(VK_SH_SDPA_CM, "sdpa_coopmat", sdpa_coopmat, f32, VK_NEEDS_COOPMAT | VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_SDPA_CM_16, "sdpa_coopmat.out16", sdpa_coopmat, out16, VK_NEEDS_COOPMAT | VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_SDPA_CM_EMU, "sdpa_coopmat.emu", sdpa_coopmat, emu_f32, VK_NEEDS_16BIT)
SISA_VK_SHADER(VK_SH_SDPA_CM_EMU_16, "sdpa_coopmat.emu.out16", sdpa_coopmat, emu_out16, VK_NEEDS_16BIT)
/* bf16 Q/K/V -> f16 copies and range exponents for sdpa_coopmat (SISA_VK_SDPA_PREPASS=1,
 * vk_sdpa_prepass.c); only beside sdpa_coopmat, whose devices have shaderFloat16 enabled */
SISA_VK_SHADER(VK_SH_SDPA_PREPASS, "sdpa_prepass", sdpa_prepass, f32, 0)
