#version 450
#define USE_TEXEL 0
#include "gemm_nt.glsl"
