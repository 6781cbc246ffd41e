/* log_softmax of one row: x - (max + log(sum(exp(x - max)))), the sum in lanes
 * (kernels/lanesum.c), the order a GPU block computes in parallel. */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/logsoftmax.c"
#include "kernels/instantiate.h"
#else
void LS_S(ls_logsoftmax)(const LS_T *x, int64_t n, LS_T *out) {
    LS_T mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    LS_T lane[LS_SUM_LANES] = {0};
    for (int64_t base = 0; base < n; base += LS_SUM_LANES)
        for (int64_t l = 0; l < LS_SUM_LANES && base + l < n; l++)
            lane[l] += exp(x[base + l] - mx);
    LS_T s = LS_S(ls_lanes_reduce)(lane);
    LS_T lse = mx + log(s);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] - lse;
}
#endif
