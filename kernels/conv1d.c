/* Depthwise causal conv1d, one token at a time. A prefill is K-1 zeros of state then the
 * same step per token; a decode is one step on the carried state: identical arithmetic. */
#ifndef LS_T
#include <string.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/conv1d.c"
#include "kernels/instantiate.h"
#else
void LS_S(ls_conv1d_step)(LS_T *state, const LS_T *u, const LS_T *w, const LS_T *bias,
                          int64_t channels, int64_t K, LS_T *out) {
    for (int64_t c = 0; c < channels; c++) {
        LS_T *st = state + c * (K - 1);
        const LS_T *wc = w + c * K;
        LS_T acc = 0;
        for (int64_t k = 0; k < K - 1; k++) acc += wc[k] * st[k];
        acc += wc[K - 1] * u[c];
        if (bias) acc += bias[c];
        out[c] = LS_S(ls_silu)(acc);
        if (K > 1) {
            memmove(st, st + 1, (size_t)(K - 2) * sizeof(LS_T));
            st[K - 2] = u[c];
        }
    }
}
#endif
