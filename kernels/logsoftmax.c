/* log_softmax of one row: x - (max + log(sum(exp(x - max)))). */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/logsoftmax.c"
#include "kernels/instantiate.h"
#else
void LS_S(ls_logsoftmax)(const LS_T *x, int64_t n, LS_T *out) {
    LS_T mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    LS_T s = 0;
    for (int64_t i = 0; i < n; i++) s += exp(x[i] - mx);
    LS_T lse = mx + log(s);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] - lse;
}
#endif
