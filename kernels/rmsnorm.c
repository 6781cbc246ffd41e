/* RMSNorm, as JambaRMSNorm: x * rsqrt(mean(x^2) + eps), then times the weight. The sum of
 * squares runs in lanes (kernels/lanesum.c), the order a GPU block computes in parallel. */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/rmsnorm.c"
#include "kernels/instantiate.h"
#else
void LS_S(ls_rmsnorm)(const LS_T *x, int64_t rows, int64_t n, const LS_T *w, double eps,
                      LS_T *y) {
    for (int64_t m = 0; m < rows; m++) {
        const LS_T *xr = x + m * n;
        LS_T *yr = y + m * n;
        LS_T lane[LS_SUM_LANES] = {0};
        for (int64_t base = 0; base < n; base += LS_SUM_LANES)
            for (int64_t l = 0; l < LS_SUM_LANES && base + l < n; l++)
                lane[l] += xr[base + l] * xr[base + l];
        LS_T ss = LS_S(ls_lanes_reduce)(lane);
        LS_T inv = (LS_T)1 / sqrt(ss / (LS_T)n + (LS_T)eps);
        for (int64_t i = 0; i < n; i++) yr[i] = w[i] * (xr[i] * inv);
    }
}
#endif
