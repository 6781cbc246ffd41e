/* Engine configuration: defaults, validation, and sizing the caches from a memory budget
 * (as gpu_memory_utilization does in vLLM). */
#include <math.h>
#include <string.h>

#include "engine/engine.h"

void ls_engine_config_default(ls_engine_config *c) {
    memset(c, 0, sizeof *c);
    c->block_size = 16;
    c->memory_fraction = 0.9;
    c->slot_policy = LS_SLOT_LOWEST;
    c->prefix_caching = 1;
    c->max_num_seqs = 16;
    c->max_batched_tokens = 256;
    c->faults.narrow_bits = 32;
}

int ls_engine_config_resolve(ls_engine_config *c, const ls_model *m, ls_err *err) {
    const ls_model_config *mc = &m->cfg;
    if (c->block_size < 1) return ls_errf(err, "cache.block_size must be >= 1 (got %lld)", (long long)c->block_size);
    if (c->max_num_seqs < 1) return ls_errf(err, "sched.max_num_seqs must be >= 1 (got %lld)", (long long)c->max_num_seqs);
    if (c->max_batched_tokens < 1)
        return ls_errf(err, "sched.max_batched_tokens must be >= 1: a step must fit at least one token (got %lld)",
                       (long long)c->max_batched_tokens);
    if (c->max_chunk < 0) return ls_errf(err, "sched.max_chunk must be >= 0 (got %lld)", (long long)c->max_chunk);
    if (c->prefix_caching && c->max_chunk > 0 && c->max_chunk < c->block_size)
        return ls_errf(err, "sched.max_chunk (%lld) must be >= cache.block_size (%lld) with prefix caching: "
                       "chunks end on block boundaries so Mamba snapshots exist there",
                       (long long)c->max_chunk, (long long)c->block_size);
    if (c->pad_decode_to < 0) return ls_errf(err, "sched.pad_decode_to must be >= 0");
    if (c->num_blocks < 0 || c->num_state_slots < 0 || c->num_snapshots < 0)
        return ls_errf(err, "cache.num_blocks, cache.num_state_slots and cache.num_snapshots must be >= 0");
    if (!(c->memory_fraction > 0 && c->memory_fraction <= 1))
        return ls_errf(err, "cache.memory_fraction must be in (0, 1] (got %g)", c->memory_fraction);
    if (c->faults.narrow_bits < 1 || c->faults.narrow_bits > 64)
        return ls_errf(err, "faults.narrow_state_offset.bits must be in 1..64 (got %d)", c->faults.narrow_bits);
    const int64_t ssm_sz = mc->mamba_d_inner * mc->mamba_d_state;
    if (c->slot_stride == 0) c->slot_stride = ssm_sz;
    if (c->slot_stride < ssm_sz)
        return ls_errf(err, "cache.slot_stride %lld is smaller than the SSM state (%lld elements = d_inner %lld x d_state %lld)",
                       (long long)c->slot_stride, (long long)ssm_sz, (long long)mc->mamba_d_inner,
                       (long long)mc->mamba_d_state);

    const double esz = (double)ls_prec_size(m->prec);
    const int64_t nm = ls_cfg_count(mc, LS_LAYER_MAMBA), na = ls_cfg_count(mc, LS_LAYER_ATTN);
    const int64_t conv_sz = mc->mamba_d_inner * (mc->mamba_d_conv - 1);
    const double slot_bytes = (double)nm * (double)(conv_sz + c->slot_stride) * esz;
    const double snap_bytes = (double)nm * (double)(conv_sz + ssm_sz) * esz;
    const double block_bytes = (double)na * 2.0 * (double)c->block_size *
                               (double)(mc->num_kv_heads * mc->head_dim) * esz;
    if (c->num_blocks == 0 || c->num_state_slots == 0) {
        if (!(c->memory_budget_mb > 0))
            return ls_errf(err, "cache.num_blocks and cache.num_state_slots must be >= 1, or give "
                           "cache.memory_budget_mb to size them from memory");
        double avail = c->memory_budget_mb * 1048576.0 * c->memory_fraction;
        if (c->num_state_slots == 0) {
            /* like vLLM: one state per schedulable sequence, if it fits in half the budget */
            double cap = slot_bytes > 0 ? floor(avail / 2 / (slot_bytes + snap_bytes)) : 1e18;
            c->num_state_slots = (int64_t)fmin((double)c->max_num_seqs, cap);
        }
        if (c->num_snapshots == 0) c->num_snapshots = c->num_state_slots;
        if (c->num_blocks == 0) {
            double rest = avail - (double)c->num_state_slots * slot_bytes - (double)c->num_snapshots * snap_bytes;
            double nb = block_bytes > 0 ? floor(rest / block_bytes) : 1e6;
            c->num_blocks = nb > 1e12 ? (int64_t)1e12 : (nb < 0 ? 0 : (int64_t)nb);
        }
        if (c->num_state_slots < 1 || c->num_blocks < 1)
            return ls_errf(err, "cache.memory_budget_mb %.3g x fraction %.3g leaves %lld state slots (%.0f bytes each) "
                           "and %lld KV blocks (%.0f bytes each): need at least one of each",
                           c->memory_budget_mb, c->memory_fraction, (long long)c->num_state_slots,
                           slot_bytes, (long long)c->num_blocks, block_bytes);
    }
    if (c->num_snapshots == 0) c->num_snapshots = c->num_state_slots;
    return 0;
}
