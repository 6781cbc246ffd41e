/* Pointwise activations, written as torch computes them. */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/activations.c"
#include "kernels/instantiate.h"
#else
LS_T LS_S(ls_silu)(LS_T x) { return x / ((LS_T)1 + exp(-x)); }

/* torch.nn.functional.softplus(beta=1, threshold=20): linear above the threshold. */
LS_T LS_S(ls_softplus)(LS_T x) { return x > (LS_T)20 ? x : log1p(exp(x)); }
#endif
