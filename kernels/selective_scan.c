/* Mamba's selective scan, one token: the recurrence carries h exactly, so a chunked
 * prefill or a decode step performs the same operations as a whole-sequence scan. */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/selective_scan.c"
#include "kernels/instantiate.h"
#else
void LS_S(ls_scan_step)(LS_T *h, const LS_T *x, const LS_T *dt, const LS_T *A, const LS_T *B,
                        const LS_T *C, const LS_T *D, const LS_T *z, int64_t channels,
                        int64_t N, LS_T *y) {
    for (int64_t c = 0; c < channels; c++) {
        LS_T *hc = h + c * N;
        const LS_T *Ac = A + c * N;
        LS_T acc = 0;
        for (int64_t n = 0; n < N; n++) {
            LS_T dA = exp(Ac[n] * dt[c]);
            LS_T dBx = (dt[c] * B[n]) * x[c];
            hc[n] = dA * hc[n] + dBx;
            acc += hc[n] * C[n];
        }
        y[c] = (acc + x[c] * D[c]) * LS_S(ls_silu)(z[c]);
    }
}
#endif
