#include "engine/faults.h"

#include <string.h>

static const struct {
    const char *name, *doc;
} FAULTS[LS_FAULT_COUNT] = {
    {"decode_misclassified",
     "a new request granted one token runs as a decode and reads its slot's previous tenant's state (vLLM #32118)"},
    {"narrow_state_offset",
     "the Mamba state write offset slot x stride is computed in N-bit unsigned arithmetic (vLLM #35275: uint32)"},
    {"prefix_hit_without_state",
     "a prefix-cache hit reuses KV blocks but not the Mamba state at that boundary"},
    {"fork_shares_slot", "rollouts forked from one prefill share one state slot instead of copying it"},
    {"preempt_keeps_state", "a preempted request re-prefills without resetting its state slot"},
    {"chunk_drops_conv_state", "chunked prefill loses the conv state at a chunk boundary"},
    {"padding_writes_slot", "padded batch rows write their state into a real slot (slot 0)"},
    {"stale_block_table", "a freed and reused KV block is read through an old block-table entry"},
};

const char *ls_fault_name(ls_fault f) { return (unsigned)f < LS_FAULT_COUNT ? FAULTS[f].name : "?"; }
const char *ls_fault_doc(ls_fault f) { return (unsigned)f < LS_FAULT_COUNT ? FAULTS[f].doc : "?"; }

int ls_fault_parse(const char *name, ls_fault *out) {
    for (int i = 0; i < LS_FAULT_COUNT; i++)
        if (strcmp(name, FAULTS[i].name) == 0) {
            *out = (ls_fault)i;
            return 0;
        }
    return -1;
}
