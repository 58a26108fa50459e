#version 450
#define USE_TEXEL 1
#include "gemm_nt.glsl"
