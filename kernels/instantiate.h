/* Compiles a kernel file's body once per precision: float (_f32) and double (_f64).
 * A kernel file includes this with LS_SELF naming itself; the file includes itself again
 * with LS_T and LS_S defined, and its `#else` branch is the body:
 *
 *     #ifndef LS_T
 *     #include "kernels/kernels.h"
 *     #define LS_SELF "kernels/rmsnorm.c"
 *     #include "kernels/instantiate.h"
 *     #else
 *     void LS_S(ls_rmsnorm)(const LS_T *x, ...) { ... }
 *     #endif
 *
 * No include guard: it is meant to be included once per kernel file. */
#define LS_T float
#define LS_S(n) n##_f32
#include LS_SELF
#undef LS_T
#undef LS_S
#define LS_T double
#define LS_S(n) n##_f64
#include LS_SELF
#undef LS_T
#undef LS_S
#undef LS_SELF
