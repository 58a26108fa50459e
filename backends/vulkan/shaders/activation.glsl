// lorac — gelu_tanh and silu with their derivatives, the float operations of
// backends/cpu/ops_elementwise.c in the same order (`precise`: no FMA contraction).
//   gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu_tanh'(x) = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  s = 1 / (1 + exp(-2u))
//   silu(x) = x / (1 + exp(-x)),  silu'(x) = s (1 + x (1 - s)),  s = 1 / (1 + exp(-x))
// (Hendrycks & Gimpel 2016; Elfwing et al. 2018.)
#ifndef LORAC_ACTIVATION_GLSL
#define LORAC_ACTIVATION_GLSL

const float SQRT_2_OVER_PI = 0.7978845608028654;
const float GELU_COEF = 0.044715;

// s = 1 / (1 + exp(-z)) and 1 - s without cancellation for any finite z.
void logistic2(float z, out float s, out float oms) {
    if (z >= 0.0) {
        precise float e = exp(-z);
        precise float r = 1.0 / (1.0 + e);
        s = r;
        oms = e * r;
    } else {
        precise float e = exp(z);
        precise float r = 1.0 / (1.0 + e);
        s = e * r;
        oms = r;
    }
}

float gelu_tanh_f(float x) {
    float s, oms;
    precise float z = (2.0 * SQRT_2_OVER_PI) * (x + GELU_COEF * x * x * x);
    logistic2(z, s, oms);
    precise float y = x * s;
    return y;
}

float gelu_tanh_grad(float x) {
    precise float x2 = x * x;
    float s, oms;
    precise float z = (2.0 * SQRT_2_OVER_PI) * (x + GELU_COEF * x2 * x);
    logistic2(z, s, oms);
    precise float du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x2);
    precise float g = s + 2.0 * x * s * oms * du;
    return g;
}

float silu_f(float x) {
    precise float y = x / (1.0 + exp(-x));
    return y;
}

float silu_grad(float x) {
    float s, oms;
    logistic2(x, s, oms);
    precise float g = s * (1.0 + x * oms);
    return g;
}

#endif
