/* The fixed order of a long row reduction (rmsnorm's sum of squares, logsoftmax's sum of
 * exps): LS_SUM_LANES partial sums, lane l adding terms l, l + 256, l + 512, ... in
 * ascending order from +0, then a halving tree, lane[l] += lane[l + h] for h = 128, 64, ...,
 * 1. A GPU block of 256 threads computes exactly these operations in parallel (a thread per
 * lane, then the same tree), where one running sum over a 32,000-entry row would leave one
 * thread adding alone. Lanes past the row's end stay +0, and adding +0 is exact, so short
 * rows take the same path. */
#ifndef LS_T
#include "kernels/kernels.h"
#define LS_SELF "kernels/lanesum.c"
#include "kernels/instantiate.h"
#else
LS_T LS_S(ls_lanes_reduce)(LS_T *lane) {
    for (int64_t h = LS_SUM_LANES / 2; h > 0; h /= 2)
        for (int64_t l = 0; l < h; l++) lane[l] += lane[l + h];
    return lane[0];
}
#endif
