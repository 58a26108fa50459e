/* lorac — Philox4x32-10 counter-based generator (see lorac/rng.h for the keying). */
#include "lorac/rng.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

uint32_t lc_rng_u32(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    return c0;
}

float lc_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    return (float)(lc_rng_u32(seed, stream, index) >> 8) * (1.0f / 16777216.0f);
}

int lc_rng_keep(uint64_t seed, uint64_t stream, uint64_t index, float p) {
    return lc_rng_uniform(seed, stream, index) >= p;
}

uint64_t lc_rng_dropout_stream(uint64_t step, uint32_t module_id) {
    return (step << 24) | (uint64_t)(module_id & 0xFFFFFFu);
}
