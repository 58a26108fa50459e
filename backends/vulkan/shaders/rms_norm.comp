#version 450
#define USE_F64 0
#include "rms_norm.glsl"
