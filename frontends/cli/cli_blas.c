/* lorac CLI — which kernel set OpenBLAS runs, for the device line of the CPU.
 *
 * OpenBLAS picks its kernels ("core": Haswell, SkylakeX, Cooperlake, Zen, ...) once, when the
 * library is loaded, from the CPU model or from the environment variable OPENBLAS_CORETYPE. The
 * choice decides much of the CPU backend's speed (development machine, AMD EPYC family 26:
 * sgemm 1024^3 about 245 GFLOP/s with Haswell's AVX2 kernels, 460 with the AVX-512 Cooperlake or
 * SkylakeX ones), so `lorac` prints it next to the CPU device. */
#include <cblas.h>

#include "cli.h"

/* OpenBLAS's own symbol (declared by its cblas.h); repeated for other CBLAS headers' sake. */
char *openblas_get_corename(void);

const char *cli_blas_corename(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}
