/* MoE routing for one token (JambaSparseMoeBlock): softmax over router logits, top-k
 * by probability, no renormalisation. The experts' outputs are summed in ascending
 * expert index, a fixed order whatever the batch. */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/moe.c"
#include "kernels/instantiate.h"
#else
/* log_softmax over the few experts with one running sum in index order (the vocabulary-wide
 * ls_logsoftmax sums in lanes; a handful of router logits need no parallel order) */
static void LS_S(route_logsoftmax)(const LS_T *x, int64_t n, LS_T *out) {
    LS_T mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    LS_T s = 0;
    for (int64_t i = 0; i < n; i++) s += exp(x[i] - mx);
    LS_T lse = mx + log(s);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] - lse;
}

void LS_S(ls_moe_route)(const LS_T *logits, int64_t n_experts, int64_t k, LS_T *probs,
                        int64_t *idx, LS_T *wts) {
    LS_S(route_logsoftmax)(logits, n_experts, probs);
    for (int64_t e = 0; e < n_experts; e++) probs[e] = exp(probs[e]);
    /* selection: k passes, each taking the largest not yet taken (lower index on ties) */
    int64_t n = 0;
    for (int64_t t = 0; t < k; t++) {
        int64_t best = -1;
        for (int64_t e = 0; e < n_experts; e++) {
            int taken = 0;
            for (int64_t i = 0; i < n; i++) taken |= idx[i] == e;
            if (!taken && (best < 0 || probs[e] > probs[best])) best = e;
        }
        idx[n++] = best;
    }
    /* ascending expert order: the order the outputs are accumulated in */
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && idx[j] < idx[j - 1]; j--) {
            int64_t t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t;
        }
    for (int64_t i = 0; i < n; i++) wts[i] = probs[idx[i]];
}
#endif
