/* Causal attention for one query row, no positional encoding (Jamba has none). Keys are
 * visited in position order through the block table whether they sit in one contiguous
 * block (reference) or in paged blocks (engine): the same operations either way. */
#ifndef LS_T
#include <tgmath.h>
#include "kernels/kernels.h"
#define LS_SELF "kernels/attention.c"
#include "kernels/instantiate.h"
#else
void LS_S(ls_attention_row)(const LS_T *q, const LS_T *kcache, const LS_T *vcache,
                            const int64_t *block_table, int64_t block_size, int64_t n_keys,
                            int64_t heads, int64_t kv_heads, int64_t head_dim, LS_T *scores,
                            LS_T *out) {
    const int64_t kv_dim = kv_heads * head_dim;
    const int64_t group = heads / kv_heads;
    const LS_T scale = (LS_T)1 / sqrt((LS_T)head_dim);
    for (int64_t h = 0; h < heads; h++) {
        const LS_T *qh = q + h * head_dim;
        const int64_t g = h / group;    /* grouped-query: query head h reads kv head h/group */
        LS_T mx = -INFINITY;
        for (int64_t j = 0; j < n_keys; j++) {
            int64_t row = block_table[j / block_size] * block_size + j % block_size;
            const LS_T *k = kcache + row * kv_dim + g * head_dim;
            LS_T s = 0;
            for (int64_t d = 0; d < head_dim; d++) s += qh[d] * k[d];
            s = s * scale;
            scores[j] = s;
            if (s > mx) mx = s;
        }
        LS_T sum = 0;
        for (int64_t j = 0; j < n_keys; j++) {
            scores[j] = exp(scores[j] - mx);
            sum += scores[j];
        }
        LS_T *oh = out + h * head_dim;
        for (int64_t d = 0; d < head_dim; d++) oh[d] = 0;
        for (int64_t j = 0; j < n_keys; j++) {
            int64_t row = block_table[j / block_size] * block_size + j % block_size;
            const LS_T *v = vcache + row * kv_dim + g * head_dim;
            LS_T p = scores[j] / sum;
            for (int64_t d = 0; d < head_dim; d++) oh[d] += p * v[d];
        }
    }
}
#endif
