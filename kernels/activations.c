/* Pointwise activations, written as torch computes them. */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_T float
#define LS_S(n) n##_f32
#include "kernels/activations.c"
#undef LS_T
#undef LS_S
#define LS_T double
#define LS_S(n) n##_f64
#include "kernels/activations.c"
#else
LS_T LS_S(ls_silu)(LS_T x) { return x / ((LS_T)1 + exp(-x)); }

/* torch.nn.functional.softplus(beta=1, threshold=20): linear above the threshold. */
LS_T LS_S(ls_softplus)(LS_T x) { return x > (LS_T)20 ? x : log1p(exp(x)); }
#endif
