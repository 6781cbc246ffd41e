/* Linear layer. The dot product of each output uses 8 partial sums over k mod 8, then
 * combines them in a fixed tree: the order depends only on `in`, never on `rows`, so a
 * row gives the same bits alone or in any batch. (Split-K that varied with the batch
 * would break invariance.)
 *
 * Each term enters its partial sum as one fused multiply-add (fma: the exact product
 * added, rounded once), the one place the kernels fuse: the GPU twin issues one FFMA per
 * term where a separate multiply and add took two instructions (its tiled kernel got 1.4x
 * faster on an H100, docs/gpu.md), and fma is correctly rounded in IEEE 754, so both sides
 * give the same bits. Everything else stays unfused (-ffp-contract=off). On
 * x86-64 dot8 is also compiled for the FMA instruction set and picked at load time
 * where the CPU has it; elsewhere libm's fma gives the same bits, slower. */
#ifndef LS_T
#include "kernels/kernels.h"
#define LS_SELF "kernels/matmul.c"
#include "kernels/instantiate.h"
#else

LS_FMA_CLONES static LS_T LS_S(dot8)(const LS_T *a, const LS_T *b, int64_t n) {
    LS_T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) acc[j] = LS_FMA(a[k + j], b[k + j], acc[j]);
    for (int j = 0; k < n; k++, j++) acc[j] = LS_FMA(a[k], b[k], acc[j]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

void LS_S(ls_linear)(const LS_T *x, int64_t rows, int64_t in, const LS_T *w, const LS_T *b,
                     int64_t out, LS_T *y) {
    for (int64_t m = 0; m < rows; m++) {
        const LS_T *xr = x + m * in;
        LS_T *yr = y + m * out;
        for (int64_t o = 0; o < out; o++) {
            LS_T s = LS_S(dot8)(w + o * in, xr, in);
            yr[o] = b ? s + b[o] : s;
        }
    }
}
#endif
