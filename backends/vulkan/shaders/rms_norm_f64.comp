#version 450
#define USE_F64 1
#include "rms_norm.glsl"
