/* RMSNorm, as JambaRMSNorm: x * rsqrt(mean(x^2) + eps), then times the weight. */
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
        LS_T ss = 0;
        for (int64_t i = 0; i < n; i++) ss += xr[i] * xr[i];
        LS_T inv = (LS_T)1 / sqrt(ss / (LS_T)n + (LS_T)eps);
        for (int64_t i = 0; i < n; i++) yr[i] = w[i] * (xr[i] * inv);
    }
}
#endif
