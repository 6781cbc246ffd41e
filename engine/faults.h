/* Planted faults: known bug classes from real serving engines, each behind one switch,
 * off by default, placed where the real bug lived. They exist so the harness can prove
 * it catches them: a harness that never fails catches nothing. docs/faults.md has the
 * real-world bug behind each. */
#ifndef LS_FAULTS_H
#define LS_FAULTS_H

typedef enum ls_fault {
    /* A new request granted one token is classified as a decode (by token count, not by
     * num_computed_tokens == 0) and so reads its slot's previous tenant's state
     * (vLLM #32118). */
    LS_FAULT_DECODE_MISCLASSIFIED = 0,
    /* The Mamba SSM state write offset slot * stride is computed in `bits`-bit unsigned
     * arithmetic (32 is the real bug, vLLM #35275); it wraps from slot ceil(2^bits/stride). */
    LS_FAULT_NARROW_STATE_OFFSET,
    /* A prefix-cache hit reuses the KV blocks but not the Mamba state at that boundary. */
    LS_FAULT_PREFIX_HIT_WITHOUT_STATE,
    /* Rollouts forked from one prefill share the parent's slot instead of copying it. */
    LS_FAULT_FORK_SHARES_SLOT,
    /* A preempted request keeps its slot and re-prefills on top of the old state. */
    LS_FAULT_PREEMPT_KEEPS_STATE,
    /* A prefill chunk that continues an earlier chunk starts with a zeroed conv state. */
    LS_FAULT_CHUNK_DROPS_CONV_STATE,
    /* Padded batch rows (decode batches padded to a captured size) write their state into
     * slot 0, a real slot, instead of being skipped. */
    LS_FAULT_PADDING_WRITES_SLOT,
    /* A preempted request, when resumed, keeps its old first block-table entry: it reads
     * and writes a freed block that another request may now own. */
    LS_FAULT_STALE_BLOCK_TABLE,
    LS_FAULT_COUNT
} ls_fault;

typedef struct ls_faults {
    int on[LS_FAULT_COUNT];
    int narrow_bits;            /* for LS_FAULT_NARROW_STATE_OFFSET; default 32 */
} ls_faults;

const char *ls_fault_name(ls_fault f);
const char *ls_fault_doc(ls_fault f);
int ls_fault_parse(const char *name, ls_fault *out);   /* -1 if unknown */

#endif
