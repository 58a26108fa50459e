/* TEMPORARY during bring-up: weak fallbacks so the library links before every kernel exists.
 * Each returns LC_ERR_UNSUPPORTED; a real kernel (strong symbol) replaces it. Removed once all exist. */
#include "cpu_internal.h"

__attribute__((weak)) lc_status lc_cpu_op_fill(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op fill is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_get_rows(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op get_rows is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_get_rows_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op get_rows_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_dequantize(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op dequantize is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_cpy(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op cpy is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_sum_sq(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op sum_sq is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_adamw(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op adamw is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_mul_mat(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op mul_mat is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_mul_mat_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op mul_mat_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_lora(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op lora is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_lora_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op lora_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_lora_merge(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op lora_merge is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_add(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op add is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_add_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op add_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_mul(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op mul is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_mul_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op mul_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_scale(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op scale is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_scale_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op scale_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_gelu_tanh(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op gelu_tanh is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_gelu_tanh_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op gelu_tanh_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_silu(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op silu is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_silu_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op silu_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_geglu(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op geglu is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_geglu_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op geglu_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_swiglu(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op swiglu is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_swiglu_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op swiglu_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_rms_norm(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op rms_norm is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_rms_norm_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op rms_norm_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_rope(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op rope is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_rope_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op rope_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_attention(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op attention is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_attention_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op attention_back is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_cross_entropy(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op cross_entropy is not implemented yet");
}
__attribute__((weak)) lc_status lc_cpu_op_cross_entropy_back(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx; (void)node;
    return lc_error(LC_ERR_UNSUPPORTED, "cpu: op cross_entropy_back is not implemented yet");
}
