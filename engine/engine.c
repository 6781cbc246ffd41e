/* The engine's run loop: schedule a step, run it through the shared forward over the
 * paged KV cache and the Mamba state pool, write states back, sample, fork, snapshot.
 *
 * State flow per step: the forward updates each scheduled sequence's Mamba state in its
 * slot. Where a planted fault separates or shares state stores (see states_in_place), each
 * state is instead copied from its slot into a staging row, the forward updates staging,
 * and staging is written back to the slot. Reads and writes go through one offset function
 * (64-bit); the planted fault narrow_state_offset swaps in the N-bit write offset, as the
 * real kernel bug did.
 *
 * The state pool, the KV cache, the snapshots and the staging rows are backend memory
 * (engine/backend.h): host memory on the CPU, device memory on a GPU. The engine computes
 * every address on the host and moves bytes only through the backend's ops, so the same
 * code drives both, faults included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/block_pool.h"
#include "engine/engine.h"
#include "engine/forward.h"

enum { SEQ_WAITING = 0, SEQ_RUNNING, SEQ_DONE };

typedef struct seq {
    int64_t id, request, rollout;      /* rollout -1: a prompt's prefill that forks n ways */
    int32_t *tokens;
    int64_t len, cap, prompt_len, max_len;
    int64_t num_computed;
    int64_t slot;                      /* -1: none */
    int64_t prev_tenant;
    int64_t *blocks;
    int64_t n_blocks, cap_blocks, n_registered;
    int64_t stale_block;               /* fault stale_block_table: first block before preemption */
    int64_t preemptions, chunk, first_chunk;
    int from_snapshot, keep_state;
    int status;
    double *logprobs;
    ls_provenance *prov;
} seq;

typedef struct plan_entry {
    seq *s;
    int64_t n;
    int has_init;
    int padding;
} plan_entry;

typedef struct engine {
    const ls_model *m;
    const ls_engine_config *c;
    const ls_backend *bk;              /* never NULL */
    const ls_workload *wl;
    ls_err *err;
    int64_t nm, na, conv_sz, ssm_sz, esz, kvd, V;
    ls_block_pool blocks;
    ls_slot_allocator slots;
    int64_t *slot_refs;                /* sequences sharing a slot (>1 only under fork_shares_slot) */
    uint8_t *slot_used;
    void **conv, **ssm;                /* per Mamba layer: [slots * conv_sz], [slots * stride] */
    void **kc, **vc;                   /* per attention layer: [blocks * block_size * kvd] */
    /* Mamba state snapshots at block boundaries, keyed by the block's content id */
    uint64_t *snap_key;
    int64_t *snap_used_step;
    void *snap_data;
    int64_t snap_bytes;
    seq **all;
    int64_t n_all, cap_all;
    int64_t *running, n_running;
    int64_t *waiting, n_waiting;
    int64_t next_request;              /* requests admitted into `waiting` so far, in order */
    int64_t step;
    ls_engine_result *out;
    int64_t cap_steps;
    /* step buffers */
    plan_entry *plan;
    int64_t n_plan, cap_plan;
    void *staging;                     /* per plan row: nm * (conv_sz + ssm_sz) */
    int64_t staging_bytes;
    double *lp_row;
    double *sample_scratch;
    /* this step's draws, made before any is recorded (draw_step), taken in order */
    ls_sample_draw *draws;
    int32_t *draw_tok;
    double *draw_lp;
    int64_t n_draws, draw_next, cap_draws, cap_draw_tok, cap_draw_lp;
    const void **draw_rows;            /* host sampling: row number -> the forward's row */
    int64_t cap_draw_rows;
} engine;

/* ---------------- small helpers ---------------- */

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

/* Byte moves in backend memory. */
static int bk_copy(engine *e, void *dst, const void *src, int64_t bytes) {
    return e->bk->ops->copy(e->bk, dst, src, bytes, e->err);
}

static int bk_zero(engine *e, void *p, int64_t bytes) { return e->bk->ops->zero(e->bk, p, bytes, e->err); }

static void *bk_alloc(engine *e, int64_t bytes) { return e->bk->ops->alloc(e->bk, bytes, e->err); }

static void bk_release(engine *e, void *p) {
    if (p) e->bk->ops->release(e->bk, p);
}

static char *conv_at(engine *e, int64_t mi, int64_t slot) {
    return (char *)e->conv[mi] + ls_slot_offset(slot, e->conv_sz) * e->esz;
}

static char *ssm_at(engine *e, int64_t mi, int64_t slot) {
    return (char *)e->ssm[mi] + ls_slot_offset(slot, e->c->slot_stride) * e->esz;
}

/* The SSM write offset: the one place the narrow_state_offset fault lives. */
static char *ssm_write_at(engine *e, int64_t mi, int64_t slot) {
    if (e->c->faults.on[LS_FAULT_NARROW_STATE_OFFSET]) {
        uint64_t off = ls_slot_offset_narrow(slot, e->c->slot_stride, e->c->faults.narrow_bits);
        return (char *)e->ssm[mi] + (int64_t)off * e->esz;
    }
    return ssm_at(e, mi, slot);
}

static char *staging_conv(engine *e, int64_t row, int64_t mi) {
    return (char *)e->staging + (row * e->nm + mi) * (e->conv_sz + e->ssm_sz) * e->esz;
}

static char *staging_ssm(engine *e, int64_t row, int64_t mi) {
    return staging_conv(e, row, mi) + e->conv_sz * e->esz;
}

static int poison_slot(engine *e, int64_t slot) {
    if (!e->c->debug_poison) return 0;
    for (int64_t mi = 0; mi < e->nm; mi++)
        if (e->bk->ops->poison(e->bk, conv_at(e, mi, slot), e->esz, e->conv_sz, 1, 0, e->err) ||
            e->bk->ops->poison(e->bk, ssm_at(e, mi, slot), e->esz, e->ssm_sz, 1, 0, e->err))
            return -1;
    return 0;
}

static int64_t take_slot(engine *e, seq *s) {
    int64_t slot = ls_slot_alloc(&e->slots, s->id);
    if (slot < 0) return -1;
    e->slot_refs[slot] = 1;
    s->slot = slot;
    s->prev_tenant = ls_slot_prev_owner(&e->slots, slot);
    if (!e->slot_used[slot]) { e->slot_used[slot] = 1; e->out->stats.distinct_slots_used++; }
    if (slot > e->out->stats.max_slot_used) e->out->stats.max_slot_used = slot;
    return slot;
}

static int release_slot(engine *e, seq *s) {
    if (s->slot < 0) return 0;
    int64_t slot = s->slot;
    s->slot = -1;
    if (--e->slot_refs[slot] > 0) return 0;
    if (ls_slot_free(&e->slots, slot, e->err)) return -1;
    return poison_slot(e, slot);
}

static int release_blocks(engine *e, seq *s) {
    for (int64_t b = 0; b < s->n_blocks; b++)
        if (ls_block_pool_decref(&e->blocks, s->blocks[b], e->err)) return -1;
    s->n_blocks = 0;
    s->n_registered = 0;
    return 0;
}

static int push_token(seq *s, int32_t tok) {
    if (s->len == s->cap) {
        int64_t nc = s->cap * 2;
        int32_t *t = realloc(s->tokens, (size_t)nc * sizeof *t);
        double *l = realloc(s->logprobs, (size_t)nc * sizeof *l);
        ls_provenance *p = realloc(s->prov, (size_t)nc * sizeof *p);
        if (t) s->tokens = t;
        if (l) s->logprobs = l;
        if (p) s->prov = p;
        if (!t || !l || !p) return -1;
        s->cap = nc;
    }
    s->tokens[s->len++] = tok;
    return 0;
}

static seq *new_seq(engine *e, int64_t request, int64_t rollout, const int32_t *toks, int64_t len,
                    int64_t prompt_len, int64_t max_len) {
    if (grow((void **)&e->all, &e->cap_all, e->n_all + 1, sizeof(seq *))) return NULL;
    seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = max_len + 1;
    s->tokens = malloc((size_t)s->cap * sizeof *s->tokens);
    s->logprobs = calloc((size_t)s->cap, sizeof *s->logprobs);
    s->prov = calloc((size_t)s->cap, sizeof *s->prov);
    if (!s->tokens || !s->logprobs || !s->prov) {
        free(s->tokens); free(s->logprobs); free(s->prov); free(s);
        return NULL;
    }
    memcpy(s->tokens, toks, (size_t)len * sizeof *toks);
    s->len = len;
    s->prompt_len = prompt_len;
    s->max_len = max_len;
    s->id = e->n_all;
    s->request = request;
    s->rollout = rollout;
    s->slot = -1;
    s->prev_tenant = -1;
    s->stale_block = -1;
    e->all[e->n_all++] = s;
    return s;
}

static void list_remove(int64_t *list, int64_t *n, int64_t id) {
    for (int64_t i = 0; i < *n; i++)
        if (list[i] == id) {
            memmove(list + i, list + i + 1, (size_t)(*n - i - 1) * sizeof *list);
            (*n)--;
            return;
        }
}

static void waiting_push_front(engine *e, seq *s) {
    memmove(e->waiting + 1, e->waiting, (size_t)e->n_waiting * sizeof *e->waiting);
    e->waiting[0] = s->id;
    e->n_waiting++;
    s->status = SEQ_WAITING;
}

/* ---------------- snapshots ---------------- */

static int64_t snap_find(engine *e, uint64_t key) {
    if (!key) return -1;
    for (int64_t i = 0; i < e->c->num_snapshots; i++)
        if (e->snap_key[i] == key) return i;
    return -1;
}

static char *snap_at(engine *e, int64_t i) { return (char *)e->snap_data + i * e->snap_bytes; }

/* Copies the state in `slot` (what the engine holds, faults included) into a snapshot. */
static int snap_take(engine *e, uint64_t key, int64_t slot) {
    if (!key || snap_find(e, key) >= 0) return 0;
    int64_t victim = 0;                        /* an empty entry, else least recently used */
    for (int64_t i = 0; i < e->c->num_snapshots; i++) {
        if (!e->snap_key[i]) { victim = i; break; }
        if (e->snap_used_step[i] < e->snap_used_step[victim]) victim = i;
    }
    char *d = snap_at(e, victim);
    for (int64_t mi = 0; mi < e->nm; mi++) {
        if (bk_copy(e, d, conv_at(e, mi, slot), e->conv_sz * e->esz)) return -1;
        d += e->conv_sz * e->esz;
        if (bk_copy(e, d, ssm_at(e, mi, slot), e->ssm_sz * e->esz)) return -1;
        d += e->ssm_sz * e->esz;
    }
    e->snap_key[victim] = key;
    e->snap_used_step[victim] = e->step;
    e->out->stats.snapshots_taken++;
    return 0;
}

static int snap_restore(engine *e, int64_t i, int64_t slot) {
    const char *d = snap_at(e, i);
    for (int64_t mi = 0; mi < e->nm; mi++) {
        if (bk_copy(e, conv_at(e, mi, slot), d, e->conv_sz * e->esz)) return -1;
        d += e->conv_sz * e->esz;
        if (bk_copy(e, ssm_at(e, mi, slot), d, e->ssm_sz * e->esz)) return -1;
        d += e->ssm_sz * e->esz;
    }
    e->snap_used_step[i] = e->step;
    e->out->stats.snapshot_restores++;
    return 0;
}

/* ---------------- KV blocks ---------------- */

static int copy_block(engine *e, int64_t from, int64_t to) {
    int64_t row_bytes = e->kvd * e->esz, bs = e->c->block_size;
    for (int64_t ai = 0; ai < e->na; ai++)
        if (bk_copy(e, (char *)e->kc[ai] + to * bs * row_bytes, (char *)e->kc[ai] + from * bs * row_bytes,
                    bs * row_bytes) ||
            bk_copy(e, (char *)e->vc[ai] + to * bs * row_bytes, (char *)e->vc[ai] + from * bs * row_bytes,
                    bs * row_bytes))
            return -1;
    return 0;
}

/* Makes s own blocks for positions [num_computed, num_computed + n): copy-on-write of a
 * shared partial block, then fresh blocks. Returns 1 if the pool ran dry (nothing lost:
 * blocks taken stay in the table for the next try), 0 ok, -1 error. */
static int ensure_blocks(engine *e, seq *s, int64_t n) {
    const int64_t bs = e->c->block_size;
    int64_t first = s->num_computed / bs;
    if (s->num_computed % bs && first < s->n_blocks &&
        ls_block_pool_refcount(&e->blocks, s->blocks[first]) > 1) {
        if (ls_block_pool_num_free(&e->blocks) == 0) return 1;
        int64_t nb = ls_block_pool_cow(&e->blocks, s->blocks[first], e->err);
        if (nb < 0) return -1;
        if (copy_block(e, s->blocks[first], nb)) return -1;
        s->blocks[first] = nb;
        e->out->stats.cow_copies++;
    }
    int64_t need = (s->num_computed + n + bs - 1) / bs;
    if (grow((void **)&s->blocks, &s->cap_blocks, need, sizeof(int64_t)))
        return ls_errf(e->err, "out of memory");
    while (s->n_blocks < need) {
        int64_t b = ls_block_pool_alloc(&e->blocks);
        if (b < 0) return 1;
        s->blocks[s->n_blocks++] = b;
    }
    return 0;
}

/* ---------------- scheduling ---------------- */

static int preempt(engine *e, seq *s) {
    list_remove(e->running, &e->n_running, s->id);
    if (e->c->faults.on[LS_FAULT_STALE_BLOCK_TABLE] && s->n_blocks > 0) s->stale_block = s->blocks[0];
    if (release_blocks(e, s)) return -1;
    if (e->c->faults.on[LS_FAULT_PREEMPT_KEEPS_STATE]) {
        s->keep_state = 1;             /* keeps its slot, and will re-prefill on top of it */
    } else if (release_slot(e, s)) {
        return -1;
    }
    s->num_computed = 0;
    s->preemptions++;
    s->from_snapshot = 0;
    e->out->stats.preemptions++;
    waiting_push_front(e, s);
    return 0;
}

static int is_decode_step(const seq *s) { return s->num_computed > 0 && s->len - s->num_computed == 1; }

/* Tokens to run for s within `budget`; with prefix caching a prefill chunk that does not
 * finish the sequence ends on a block boundary so a snapshot can be taken there. */
static int64_t chunk_len(const engine *e, const seq *s, int64_t budget) {
    int64_t left = s->len - s->num_computed, n = left < budget ? left : budget;
    if (e->c->max_chunk > 0 && n > e->c->max_chunk && !is_decode_step(s)) n = e->c->max_chunk;
    if (e->c->prefix_caching && n < left) {
        int64_t bs = e->c->block_size, end = (s->num_computed + n) / bs * bs;
        n = end - s->num_computed;
    }
    return n;
}

static int add_plan(engine *e, seq *s, int64_t n, int has_init, int padding) {
    if (grow((void **)&e->plan, &e->cap_plan, e->n_plan + 1, sizeof(plan_entry)))
        return ls_errf(e->err, "out of memory");
    e->plan[e->n_plan++] = (plan_entry){s, n, has_init, padding};
    return 0;
}

static int has_initial_state(const engine *e, const seq *s, int64_t n) {
    if (e->c->faults.on[LS_FAULT_DECODE_MISCLASSIFIED] && n == 1) return 1;  /* by count: the bug */
    return s->num_computed > 0 || s->keep_state;
}

/* Prefix hit for a fresh sequence: the longest run of cached full blocks ending where a
 * Mamba snapshot exists, leaving at least one token to compute. Takes references. */
static int prefix_hit(engine *e, seq *s, int64_t *hit_blocks, int64_t *snap) {
    *hit_blocks = 0;
    *snap = -1;
    if (!e->c->prefix_caching) return 0;
    const int64_t bs = e->c->block_size;
    /* the chain of cached blocks is collected in s->blocks; only a prefix of it is taken */
    int64_t parent = -1, n = 0;
    for (int64_t b = 0; (b + 1) * bs <= s->len - 1; b++) {
        int64_t blk = ls_block_pool_lookup(&e->blocks, parent, s->tokens + b * bs, bs);
        if (blk < 0) break;
        if (grow((void **)&s->blocks, &s->cap_blocks, n + 1, sizeof(int64_t)))
            return ls_errf(e->err, "out of memory");
        s->blocks[n++] = blk;
        int64_t sn = snap_find(e, ls_block_pool_content_id(&e->blocks, blk));
        if (sn >= 0) { *hit_blocks = n; *snap = sn; }
        parent = blk;
    }
    for (int64_t i = 0; i < *hit_blocks; i++)
        if (ls_block_pool_touch(&e->blocks, s->blocks[i], e->err)) return -1;
    s->n_blocks = s->n_registered = *hit_blocks;
    return 0;
}

static int admit(engine *e, seq *s, int64_t budget, int *admitted) {
    *admitted = 0;
    int had_slot = s->slot >= 0;
    if (!had_slot && take_slot(e, s) < 0) return 0;
    int64_t hit = 0, snap = -1;
    if (prefix_hit(e, s, &hit, &snap)) return -1;
    s->num_computed = hit * e->c->block_size;
    int64_t n = chunk_len(e, s, budget);
    int rc = n > 0 ? ensure_blocks(e, s, n) : 1;
    if (rc != 0) {                     /* does not fit now: undo, try again next step */
        if (rc < 0 || release_blocks(e, s)) return -1;
        s->num_computed = 0;
        if (!had_slot && release_slot(e, s)) return -1;
        return 0;
    }
    s->from_snapshot = 0;
    if (hit > 0) {
        e->out->stats.prefix_hit_tokens += s->num_computed;
        if (!e->c->faults.on[LS_FAULT_PREFIX_HIT_WITHOUT_STATE]) {
            if (snap_restore(e, snap, s->slot)) return -1;
            s->from_snapshot = 1;
        } else {
            s->keep_state = 0;
        }
    }
    s->chunk = 0;
    s->first_chunk = n;
    int has_init = has_initial_state(e, s, n);
    if (hit > 0 && e->c->faults.on[LS_FAULT_PREFIX_HIT_WITHOUT_STATE]) has_init = 0;
    if (add_plan(e, s, n, has_init, 0)) return -1;
    s->status = SEQ_RUNNING;
    e->running[e->n_running++] = s->id;
    *admitted = 1;
    return 0;
}

static int schedule(engine *e) {
    e->n_plan = 0;
    int64_t budget = e->c->max_batched_tokens;
    int preempted = 0;
    /* running sequences first, in order; preempt from the back when blocks run out */
    for (int64_t i = 0; i < e->n_running && budget > 0; i++) {
        seq *s = e->all[e->running[i]];
        int64_t n = chunk_len(e, s, budget);
        if (n <= 0) continue;
        int rc;
        while ((rc = ensure_blocks(e, s, n)) == 1) {
            seq *victim = e->all[e->running[e->n_running - 1]];
            if (preempt(e, victim)) return -1;
            preempted = 1;
            if (victim == s) break;
        }
        if (rc < 0) return -1;
        if (rc == 1) { i--; continue; }   /* s itself was preempted; the list shifted */
        if (add_plan(e, s, n, has_initial_state(e, s, n), 0)) return -1;
        budget -= n;
    }
    /* then waiting sequences, in order, while there is room (none after a preemption) */
    while (!preempted && e->n_waiting > 0 && budget > 0 && e->n_running < e->c->max_num_seqs) {
        seq *s = e->all[e->waiting[0]];
        int admitted;
        if (admit(e, s, budget, &admitted)) return -1;
        if (!admitted) break;
        e->waiting[0] = -1;
        list_remove(e->waiting, &e->n_waiting, -1);
        budget -= e->plan[e->n_plan - 1].n;
    }
    /* all-decode batches are padded to a captured size, as CUDA graphs are */
    if (e->c->pad_decode_to > 0 && e->n_plan > 0) {
        int all_decode = 1;
        for (int64_t i = 0; i < e->n_plan; i++) all_decode &= e->plan[i].n == 1 && e->plan[i].has_init;
        while (all_decode && e->n_plan % e->c->pad_decode_to)
            if (add_plan(e, NULL, 1, 0, 1)) return -1;
    }
    return 0;
}

/* ---------------- running a step ---------------- */

static void fill_provenance(engine *e, seq *s, int64_t row, ls_provenance *p) {
    const int64_t bs = e->c->block_size;
    int64_t last = s->num_computed - 1;
    *p = (ls_provenance){.step = e->step, .batch_row = row, .slot = s->slot,
                         .prev_tenant = s->prev_tenant,
                         .block = last >= 0 && last / bs < s->n_blocks ? s->blocks[last / bs] : -1,
                         .n_blocks = s->n_blocks, .chunk = s->chunk, .first_chunk = s->first_chunk,
                         .from_snapshot = s->from_snapshot,
                         .preemptions = s->preemptions};
}

static int finish(engine *e, seq *s) {
    list_remove(e->running, &e->n_running, s->id);
    s->status = SEQ_DONE;
    if (release_blocks(e, s)) return -1;
    return release_slot(e, s);
}

/* Records s's next token: the next draw of this step (drawn in advance, see draw_step). */
static int sample_next(engine *e, seq *s, const ls_provenance *p) {
    if (e->draw_next >= e->n_draws) return ls_errf(e->err, "internal: more draws taken than made");
    const int32_t tok = e->draw_tok[e->draw_next];
    const double lp = e->draw_lp[e->draw_next++];
    if (tok < 0 || tok >= e->V) return ls_errf(e->err, "sampler returned token %d", tok);
    int64_t pos = s->len;
    if (push_token(s, tok)) return ls_errf(e->err, "out of memory");
    s->logprobs[pos] = lp;
    s->prov[pos] = *p;
    return 0;
}

/* A prompt's prefill is done: n rollouts continue from its state and KV blocks. */
static int fork_rollouts(engine *e, seq *parent, const ls_provenance *p) {
    const ls_request *r = &e->wl->requests[parent->request];
    int64_t pos = 0;
    for (; pos < e->n_running && e->running[pos] != parent->id; pos++) {}
    list_remove(e->running, &e->n_running, parent->id);
    e->out->stats.forks++;
    for (int64_t i = 0; i < r->n_rollouts; i++) {
        seq *c = new_seq(e, parent->request, i, parent->tokens, parent->len, parent->prompt_len,
                         parent->max_len);
        if (!c) return ls_errf(e->err, "out of memory");
        parent = e->all[parent->id];    /* e->all may have moved */
        c->num_computed = parent->num_computed;
        c->from_snapshot = parent->from_snapshot;
        c->chunk = parent->chunk;
        c->first_chunk = parent->first_chunk;
        c->preemptions = parent->preemptions;
        if (grow((void **)&c->blocks, &c->cap_blocks, parent->n_blocks + 1, sizeof(int64_t)))
            return ls_errf(e->err, "out of memory");
        for (int64_t b = 0; b < parent->n_blocks; b++) {
            if (ls_block_pool_incref(&e->blocks, parent->blocks[b], e->err)) return -1;
            c->blocks[b] = parent->blocks[b];
        }
        c->n_blocks = parent->n_blocks;
        c->n_registered = parent->n_registered;
        int fits = e->n_running < e->c->max_num_seqs;
        if (i == 0 || (e->c->faults.on[LS_FAULT_FORK_SHARES_SLOT] && fits)) {
            c->slot = parent->slot;    /* rollout 0 inherits; the fault makes all share */
            c->prev_tenant = parent->prev_tenant;
            e->slot_refs[c->slot]++;
        } else if (fits && take_slot(e, c) >= 0) {
            for (int64_t mi = 0; mi < e->nm; mi++)
                if (bk_copy(e, conv_at(e, mi, c->slot), conv_at(e, mi, parent->slot), e->conv_sz * e->esz) ||
                    bk_copy(e, ssm_write_at(e, mi, c->slot), ssm_at(e, mi, parent->slot), e->ssm_sz * e->esz))
                    return -1;
        } else {
            fits = 0;
        }
        if (sample_next(e, c, p)) return -1;
        if (c->len >= c->max_len) {        /* one new token was all it wanted */
            c->status = SEQ_DONE;
            if (release_blocks(e, c) || release_slot(e, c)) return -1;
            continue;
        }
        if (!fits) {                   /* no room: it re-prefills later, as a preempted one would */
            if (release_blocks(e, c)) return -1;
            c->num_computed = 0;
            c->status = SEQ_WAITING;
            e->waiting[e->n_waiting++] = c->id;
            continue;
        }
        c->status = SEQ_RUNNING;
        memmove(e->running + pos + 1, e->running + pos, (size_t)(e->n_running - pos) * sizeof(int64_t));
        e->running[pos++] = c->id;
        e->n_running++;
    }
    parent = e->all[parent->id];
    parent->status = SEQ_DONE;
    if (release_blocks(e, parent)) return -1;
    return release_slot(e, parent);
}

/* After a step: register newly full blocks for prefix caching and snapshot the state
 * at a block boundary. */
static int after_step_cache(engine *e, seq *s) {
    if (!e->c->prefix_caching) return 0;
    const int64_t bs = e->c->block_size;
    while (s->n_registered < s->num_computed / bs) {
        int64_t b = s->n_registered;
        if (ls_block_pool_register(&e->blocks, s->blocks[b], b ? s->blocks[b - 1] : -1,
                                   s->tokens + b * bs, bs, e->err) < 0)
            return -1;
        s->n_registered++;
    }
    if (s->num_computed % bs == 0 && s->num_computed > 0 && s->slot >= 0)
        return snap_take(e, ls_block_pool_content_id(&e->blocks, s->blocks[s->num_computed / bs - 1]), s->slot);
    return 0;
}

/* Every token this step samples, drawn before any is recorded: a prompt whose prefill is
 * done draws once per rollout (rollout i at the prompt's length), a rollout draws its next
 * token. A draw depends only on its row and key, never on when it is made, so drawing them
 * all up front gives the tokens drawing them one by one would. On a backend with a sample
 * op the rows never leave it (one call for the step); otherwise each row is widened to
 * double once and ls_sample runs here. Sequence i asks for a row iff steps[i].logprobs. */
static int draw_step(engine *e, const ls_seq_step *steps, int on_backend) {
    e->n_draws = e->draw_next = 0;
    int64_t row = 0;
    for (int64_t i = 0; i < e->n_plan; i++) {
        if (e->plan[i].padding || !steps[i].logprobs) continue;
        const seq *s = e->plan[i].s;
        const ls_request *r = &e->wl->requests[s->request];
        const int64_t n = s->rollout < 0 ? r->n_rollouts : 1;
        const int64_t need = e->n_draws + n;
        if (grow((void **)&e->draws, &e->cap_draws, need, sizeof *e->draws) ||
            grow((void **)&e->draw_tok, &e->cap_draw_tok, need, sizeof *e->draw_tok) ||
            grow((void **)&e->draw_lp, &e->cap_draw_lp, need, sizeof *e->draw_lp) ||
            grow((void **)&e->draw_rows, &e->cap_draw_rows, row + 1, sizeof *e->draw_rows))
            return ls_errf(e->err, "out of memory");
        e->draw_rows[row] = steps[i].logprobs;
        for (int64_t k = 0; k < n; k++)
            e->draws[e->n_draws++] = (ls_sample_draw){
                .row = row, .sampling = r->sampling, .seed = e->wl->seed,
                .request = (uint64_t)s->request,
                .rollout = (uint64_t)(s->rollout < 0 ? k : s->rollout),
                .position = (uint64_t)s->len};
        row++;
    }
    if (e->n_draws == 0) return 0;
    if (on_backend)
        return e->bk->ops->sample(e->bk, e->draws, e->n_draws, e->draw_tok, e->draw_lp, e->err);
    /* On the host, through the same row numbers the backend gets (so they are tested on
     * the CPU too); each row widened to double once, as the draws come row by row. */
    int64_t widened = -1;
    for (int64_t j = 0; j < e->n_draws; j++) {
        const ls_sample_draw *d = &e->draws[j];
        if (d->row < 0 || d->row >= row) return ls_errf(e->err, "internal: draw of row %lld", (long long)d->row);
        if (d->row != widened) {
            const void *src = e->draw_rows[d->row];
            for (int64_t v = 0; v < e->V; v++)
                e->lp_row[v] = e->esz == 8 ? ((const double *)src)[v] : (double)((const float *)src)[v];
            widened = d->row;
        }
        const int32_t tok = ls_sample(e->lp_row, e->V, &d->sampling, d->seed, d->request,
                                      d->rollout, d->position, e->sample_scratch);
        e->draw_tok[j] = tok;
        e->draw_lp[j] = tok >= 0 && tok < e->V ? e->lp_row[tok] : 0.0;
    }
    return 0;
}

/* Forwards a forward-pass probe to the engine's, naming the sequence and position. */
static void probe_relay(void *ctx, int64_t seq_idx, int64_t row, int64_t layer, const char *comp,
                        const void *data, int64_t n) {
    engine *e = ctx;
    const plan_entry *pe = &e->plan[seq_idx];
    if (pe->padding) return;
    int64_t pos = pe->s->num_computed + (row < 0 ? 0 : row);
    e->c->probe(e->c->probe_ctx, e->step, pe->s->request, pe->s->rollout, pos,
                layer, comp, data, n);
}

/* Whether this step updates Mamba states in their slots instead of staging them. Staging
 * (copy in, forward, copy back) is needed only where a planted fault stores a state
 * somewhere other than where it was read (narrow_state_offset) or lets two rows of one step
 * store into the same slot (fork_shares_slot, padding_writes_slot): the write-back loop
 * then orders the stores, as one kernel launch on a GPU would not. Everywhere else the
 * forward reads and writes the same bytes either way, and in place saves two copies of every
 * state of the batch per step. */
static int states_in_place(const engine *e) {
    const ls_faults *f = &e->c->faults;
    return !e->c->stage_states && !f->on[LS_FAULT_NARROW_STATE_OFFSET] &&
           !f->on[LS_FAULT_FORK_SHARES_SLOT] && !f->on[LS_FAULT_PADDING_WRITES_SLOT];
}

/* A plan entry that owns a slot (padding rows run on a staging row). */
static int entry_in_place(const plan_entry *pe) { return !pe->padding && pe->s->slot >= 0; }

static int run_step(engine *e) {
    const ls_model *m = e->m;
    const int64_t np = e->n_plan;
    const size_t unp = (size_t)(np > 0 ? np : 1);
    ls_seq_step *steps = calloc(unp, sizeof *steps);
    void **ptrs = calloc(unp * (size_t)(e->nm * 2 + 1), sizeof(void *));
    int64_t **tables = calloc(unp, sizeof(int64_t *));
    char **lps = calloc(unp, sizeof(char *));
    int64_t rows = 0;
    for (int64_t i = 0; i < np; i++) rows += e->plan[i].n;
    int rc = -1;
    const int on_backend = e->bk->ops->sample != NULL;
    if (!steps || !ptrs || !tables || !lps) { ls_errf(e->err, "out of memory"); goto done; }
    /* Staging rows, one per staged plan entry: grown, never shrunk (every row is written
     * before it is read). In place, an entry's states are its slot's. */
    const int direct = states_in_place(e);
    int64_t n_staged = 0;
    for (int64_t i = 0; i < np; i++) n_staged += !(direct && entry_in_place(&e->plan[i]));
    const int64_t staging_need = (n_staged + 1) * e->nm * (e->conv_sz + e->ssm_sz) * e->esz;
    if (staging_need > e->staging_bytes) {
        bk_release(e, e->staging);
        e->staging_bytes = 0;
        if (!(e->staging = bk_alloc(e, staging_need))) goto done;
        e->staging_bytes = staging_need;
    }
    static const int32_t pad_token[1] = {0};
    for (int64_t i = 0, k = 0; i < np; i++) {
        plan_entry *pe = &e->plan[i];
        seq *s = pe->s;
        ls_seq_step *st = &steps[i];
        const int in_place = direct && entry_in_place(pe);
        st->conv = ptrs + i * e->nm * 2;
        st->ssm = st->conv + e->nm;
        for (int64_t mi = 0; mi < e->nm; mi++) {
            st->conv[mi] = in_place ? conv_at(e, mi, s->slot) : staging_conv(e, k, mi);
            st->ssm[mi] = in_place ? ssm_at(e, mi, s->slot) : staging_ssm(e, k, mi);
        }
        k += !in_place;
        if (pe->padding) {
            *st = (ls_seq_step){.tokens = pad_token, .n = 1, .conv = st->conv, .ssm = st->ssm,
                                .logits_from = 1};
            continue;
        }
        for (int64_t mi = 0; mi < e->nm && pe->has_init; mi++) {
            if (!in_place &&
                (bk_copy(e, st->conv[mi], conv_at(e, mi, s->slot), e->conv_sz * e->esz) ||
                 bk_copy(e, st->ssm[mi], ssm_at(e, mi, s->slot), e->ssm_sz * e->esz)))
                goto done;
            if (e->c->faults.on[LS_FAULT_CHUNK_DROPS_CONV_STATE] && s->num_computed > 0 &&
                !is_decode_step(s) && bk_zero(e, st->conv[mi], e->conv_sz * e->esz))
                goto done;
        }
        st->tokens = s->tokens + s->num_computed;
        st->n = pe->n;
        st->start_pos = s->num_computed;
        st->has_initial_state = pe->has_init;
        st->block_table = s->blocks;
        if (e->c->faults.on[LS_FAULT_STALE_BLOCK_TABLE] && s->stale_block >= 0 && s->n_blocks > 0) {
            tables[i] = malloc((size_t)s->n_blocks * sizeof(int64_t));
            if (!tables[i]) { ls_errf(e->err, "out of memory"); goto done; }
            memcpy(tables[i], s->blocks, (size_t)s->n_blocks * sizeof(int64_t));
            tables[i][0] = s->stale_block;   /* the old entry was never replaced */
            st->block_table = tables[i];
        }
        int wants = s->num_computed + pe->n == s->len;
        st->logits_from = wants ? pe->n - 1 : pe->n;
        if (wants && on_backend) {
            st->logprobs = e->lp_row;   /* a marker: the row stays on the backend */
        } else if (wants) {
            lps[i] = malloc((size_t)(e->V * e->esz));
            if (!lps[i]) { ls_errf(e->err, "out of memory"); goto done; }
            st->logprobs = lps[i];
        }
    }
    ls_kv_cache kv = {.block_size = e->c->block_size, .k = e->kc, .v = e->vc};
    ls_forward_opts fo = {.keep_rows = on_backend};
    if (e->c->probe) {
        fo.probe = probe_relay;
        fo.probe_ctx = e;
    }
    if (e->bk->ops->forward(e->bk, m, &kv, steps, np, &fo, e->err)) goto done;

    /* Write states back. The rows of one step are one kernel launch on a GPU, where every
     * sequence of the batch stores its own state: a stray store (a wrapped offset) that
     * lands on a live sequence of the same batch is overwritten by that sequence's own
     * store. Stray stores go first so the same holds here; they still clobber any slot
     * whose owner is not in this batch. */
    ls_engine_step rec = {.step = e->step, .n_seqs = np};
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < np; i++) {
            plan_entry *pe = &e->plan[i];
            int64_t slot = pe->padding ? (e->c->faults.on[LS_FAULT_PADDING_WRITES_SLOT] ? 0 : -1) : pe->s->slot;
            if (slot < 0 || (direct && entry_in_place(pe))) continue;   /* in place: stored */
            int stray = e->nm > 0 && ssm_write_at(e, 0, slot) != ssm_at(e, 0, slot);
            if (stray != (pass == 0)) continue;
            for (int64_t mi = 0; mi < e->nm; mi++)
                if (bk_copy(e, conv_at(e, mi, slot), steps[i].conv[mi], e->conv_sz * e->esz) ||
                    bk_copy(e, ssm_write_at(e, mi, slot), steps[i].ssm[mi], e->ssm_sz * e->esz))
                    goto done;
        }
    for (int64_t i = 0; i < np; i++) {
        plan_entry *pe = &e->plan[i];
        rec.n_tokens += pe->n;
        if (pe->padding) rec.n_padding++;
        else if (is_decode_step(pe->s)) rec.n_decode++;
        else rec.n_prefill++;
    }
    e->out->stats.padded_rows += rec.n_padding;
    e->out->stats.tokens_computed += rows;

    /* draw, then advance, cache and record the draws */
    if (draw_step(e, steps, on_backend)) goto done;
    for (int64_t i = 0; i < np; i++) {
        plan_entry *pe = &e->plan[i];
        if (pe->padding) continue;
        seq *s = pe->s;
        if (s->num_computed > 0 && !is_decode_step(s)) e->out->stats.chunked_prefills++;
        s->num_computed += pe->n;
        s->chunk++;
        s->keep_state = 0;
        if (after_step_cache(e, s)) goto done;
        if (!steps[i].logprobs) continue;
        ls_provenance p;
        fill_provenance(e, s, i, &p);
        if (s->rollout < 0) {
            if (fork_rollouts(e, s, &p)) goto done;
        } else {
            if (sample_next(e, s, &p)) goto done;
            if (s->len >= s->max_len && finish(e, s)) goto done;
        }
    }
    if (e->draw_next != e->n_draws) {
        ls_errf(e->err, "internal: %lld draws made, %lld taken", (long long)e->n_draws,
                (long long)e->draw_next);
        goto done;
    }
    rec.free_blocks = ls_block_pool_num_free(&e->blocks);
    rec.free_slots = ls_slot_num_free(&e->slots);
    rec.preemptions = e->out->stats.preemptions;
    if (grow((void **)&e->out->steps, &e->cap_steps, e->out->n_steps + 1, sizeof rec)) {
        ls_errf(e->err, "out of memory");
        goto done;
    }
    e->out->steps[e->out->n_steps++] = rec;
    rc = 0;
done:
    for (int64_t i = 0; tables && i < np; i++) free(tables[i]);
    for (int64_t i = 0; lps && i < np; i++) free(lps[i]);
    free(steps); free(ptrs); free(tables); free(lps);
    return rc;
}

/* ---------------- setup, loop, results ---------------- */

static int engine_init(engine *e) {
    const ls_model_config *mc = &e->m->cfg;
    const ls_engine_config *c = e->c;
    e->nm = ls_cfg_count(mc, LS_LAYER_MAMBA);
    e->na = ls_cfg_count(mc, LS_LAYER_ATTN);
    e->conv_sz = mc->mamba_d_inner * (mc->mamba_d_conv - 1);
    e->ssm_sz = mc->mamba_d_inner * mc->mamba_d_state;
    e->esz = ls_prec_size(e->m->prec);
    e->kvd = mc->num_kv_heads * mc->head_dim;
    e->V = mc->vocab_size;
    if (ls_block_pool_init(&e->blocks, c->num_blocks, c->block_size, e->err)) return -1;
    if (ls_slot_alloc_init(&e->slots, c->num_state_slots, c->slot_policy, c->slot_seed, e->err)) return -1;
    e->slot_refs = calloc((size_t)c->num_state_slots, sizeof *e->slot_refs);
    e->slot_used = calloc((size_t)c->num_state_slots, 1);
    e->conv = calloc((size_t)e->nm + 1, sizeof(void *));
    e->ssm = calloc((size_t)e->nm + 1, sizeof(void *));
    e->kc = calloc((size_t)e->na + 1, sizeof(void *));
    e->vc = calloc((size_t)e->na + 1, sizeof(void *));
    e->snap_bytes = e->nm * (e->conv_sz + e->ssm_sz) * e->esz;
    e->snap_key = calloc((size_t)c->num_snapshots, sizeof *e->snap_key);
    e->snap_used_step = calloc((size_t)c->num_snapshots, sizeof *e->snap_used_step);
    e->snap_data = bk_alloc(e, c->num_snapshots * e->snap_bytes + 1);
    e->lp_row = malloc((size_t)e->V * sizeof(double));
    e->sample_scratch = malloc((size_t)(2 * e->V + 2) * sizeof(double));
    int64_t total_req = 0;
    for (int64_t r = 0; r < e->wl->n_requests; r++) total_req += 1 + e->wl->requests[r].n_rollouts;
    e->running = malloc((size_t)(total_req + 1) * sizeof(int64_t));
    e->waiting = malloc((size_t)(total_req + 1) * sizeof(int64_t));
    if (!e->slot_refs || !e->slot_used || !e->conv || !e->ssm || !e->kc || !e->vc || !e->snap_key ||
        !e->snap_used_step || !e->snap_data || !e->lp_row || !e->sample_scratch || !e->running ||
        !e->waiting)
        return ls_errf(e->err, "out of memory");
    /* Slots hold NaN until written: with debug_poison a read of a never-written or freed slot
     * is loud; without it they start at zero, like a fresh allocation. The pool comes zeroed
     * from the backend (one allocation and one memset per layer, also on a device) and the
     * poison is one strided fill per layer over every slot's state, not a loop of slots. */
    for (int64_t mi = 0; mi < e->nm; mi++) {
        int64_t ssm_elems = ls_slot_offset(c->num_state_slots - 1, c->slot_stride) + c->slot_stride;
        ls_err why = {{0}};
        e->conv[mi] = e->bk->ops->alloc(e->bk, (c->num_state_slots * e->conv_sz + 1) * e->esz, &why);
        e->ssm[mi] = e->conv[mi] ? e->bk->ops->alloc(e->bk, ssm_elems * e->esz, &why) : NULL;
        if (!e->conv[mi] || !e->ssm[mi])
            return ls_errf(e->err, "cannot allocate the Mamba state pool (%lld slots x stride %lld, %.3g GB) on the %s backend: %s",
                           (long long)c->num_state_slots, (long long)c->slot_stride,
                           (double)ssm_elems * (double)e->esz * 1e-9, e->bk->name, why.msg);
        if (c->debug_poison &&
            (e->bk->ops->poison(e->bk, e->conv[mi], e->esz, e->conv_sz, c->num_state_slots, e->conv_sz, e->err) ||
             e->bk->ops->poison(e->bk, e->ssm[mi], e->esz, e->ssm_sz, c->num_state_slots, c->slot_stride, e->err)))
            return -1;
    }
    int64_t kv_elems = c->num_blocks * c->block_size * e->kvd;
    for (int64_t ai = 0; ai < e->na; ai++) {
        ls_err why = {{0}};
        e->kc[ai] = e->bk->ops->alloc(e->bk, (kv_elems + 1) * e->esz, &why);
        e->vc[ai] = e->kc[ai] ? e->bk->ops->alloc(e->bk, (kv_elems + 1) * e->esz, &why) : NULL;
        if (!e->kc[ai] || !e->vc[ai])
            return ls_errf(e->err, "cannot allocate the KV cache (%lld blocks) on the %s backend: %s",
                           (long long)c->num_blocks, e->bk->name, why.msg);
    }
    e->out->stats.num_blocks = c->num_blocks;
    e->out->stats.num_slots = c->num_state_slots;
    e->out->stats.slot_stride = c->slot_stride;
    e->out->stats.state_elems = e->ssm_sz;
    e->out->stats.max_slot_used = -1;
    return 0;
}

static void engine_free(engine *e) {
    ls_block_pool_free(&e->blocks);
    ls_slot_alloc_free(&e->slots);
    for (int64_t mi = 0; e->conv && mi < e->nm; mi++) { bk_release(e, e->conv[mi]); bk_release(e, e->ssm[mi]); }
    for (int64_t ai = 0; e->kc && ai < e->na; ai++) { bk_release(e, e->kc[ai]); bk_release(e, e->vc[ai]); }
    free(e->conv); free(e->ssm); free(e->kc); free(e->vc);
    free(e->slot_refs); free(e->slot_used);
    free(e->snap_key); free(e->snap_used_step); bk_release(e, e->snap_data);
    free(e->lp_row); free(e->sample_scratch);
    free(e->draws); free(e->draw_tok); free(e->draw_lp); free((void *)e->draw_rows);
    free(e->running); free(e->waiting);
    free(e->plan); bk_release(e, e->staging);
    for (int64_t i = 0; i < e->n_all; i++) {
        seq *s = e->all[i];
        free(s->tokens); free(s->logprobs); free(s->prov); free(s->blocks); free(s);
    }
    free(e->all);
}

static int check_workload(const engine *e) {
    const ls_workload *wl = e->wl;
    const int64_t cap = e->c->num_blocks * e->c->block_size;
    for (int64_t r = 0; r < wl->n_requests; r++) {
        const ls_request *q = &wl->requests[r];
        if (q->prompt_len < 1) return ls_errf(e->err, "request %lld: empty prompt", (long long)r);
        if (q->n_rollouts < 1) return ls_errf(e->err, "request %lld: rollouts must be >= 1 (got %lld)", (long long)r, (long long)q->n_rollouts);
        if (q->max_new_tokens < 1) return ls_errf(e->err, "request %lld: max_new_tokens must be >= 1", (long long)r);
        if (q->arrival_step < 0) return ls_errf(e->err, "request %lld: negative arrival step", (long long)r);
        if (ls_sampling_check(&q->sampling, e->err)) return ls_err_prefix(e->err, "request %lld: ", (long long)r);
        if (q->prompt_len + q->max_new_tokens > cap)
            return ls_errf(e->err, "request %lld needs %lld tokens of KV but the cache holds %lld "
                           "(cache.num_blocks %lld x block_size %lld)", (long long)r,
                           (long long)(q->prompt_len + q->max_new_tokens), (long long)cap,
                           (long long)e->c->num_blocks, (long long)e->c->block_size);
        for (int64_t i = 0; i < q->prompt_len; i++)
            if (q->prompt[i] < 0 || q->prompt[i] >= e->V)
                return ls_errf(e->err, "request %lld: token %d outside the vocabulary [0, %lld)",
                               (long long)r, q->prompt[i], (long long)e->V);
    }
    return 0;
}

static int collect(engine *e) {
    ls_engine_result *o = e->out;
    int64_t n = 0;
    for (int64_t i = 0; i < e->n_all; i++) n += e->all[i]->rollout >= 0;
    o->seqs = calloc((size_t)n + 1, sizeof *o->seqs);
    o->tenants = calloc((size_t)e->n_all + 1, sizeof *o->tenants);
    if (!o->seqs || !o->tenants) return ls_errf(e->err, "out of memory");
    for (int64_t i = 0; i < e->n_all; i++)
        o->tenants[o->n_tenants++] = (ls_engine_tenant){i, e->all[i]->request, e->all[i]->rollout};
    for (int64_t i = 0; i < e->n_all; i++) {
        seq *s = e->all[i];
        if (s->rollout < 0) continue;
        ls_engine_seq *d = &o->seqs[o->n_seqs++];
        *d = (ls_engine_seq){.request = s->request, .rollout = s->rollout, .tokens = s->tokens,
                             .len = s->len, .prompt_len = s->prompt_len, .logprobs = s->logprobs,
                             .prov = s->prov};
        s->tokens = NULL; s->logprobs = NULL; s->prov = NULL;
    }
    /* order by (request, rollout): the comparator's join key */
    for (int64_t i = 1; i < o->n_seqs; i++)
        for (int64_t j = i; j > 0; j--) {
            ls_engine_seq *a = &o->seqs[j - 1], *b = &o->seqs[j];
            if (a->request < b->request || (a->request == b->request && a->rollout <= b->rollout)) break;
            ls_engine_seq t = *a; *a = *b; *b = t;
        }
    return 0;
}

static int engine_loop(engine *e) {
    const ls_workload *wl = e->wl;
    for (;;) {
        while (e->next_request < wl->n_requests && wl->requests[e->next_request].arrival_step <= e->step) {
            const ls_request *q = &wl->requests[e->next_request];
            seq *s = new_seq(e, e->next_request, q->n_rollouts > 1 ? -1 : 0, q->prompt, q->prompt_len,
                             q->prompt_len, q->prompt_len + q->max_new_tokens);
            if (!s) return ls_errf(e->err, "out of memory");
            e->waiting[e->n_waiting++] = s->id;
            e->next_request++;
        }
        if (e->n_running == 0 && e->n_waiting == 0) {
            if (e->next_request >= wl->n_requests) return 0;
            e->step = wl->requests[e->next_request].arrival_step;  /* idle until the next arrival */
            continue;
        }
        if (schedule(e)) return -1;
        if (e->n_plan == 0) {
            if (e->n_running == 0) {
                seq *s = e->all[e->waiting[0]];
                return ls_errf(e->err, "cannot schedule request %lld (%lld tokens): the cache has %lld free "
                               "blocks of %lld and %lld free state slots; raise cache.num_blocks / "
                               "cache.num_state_slots", (long long)s->request, (long long)s->len,
                               (long long)ls_block_pool_num_free(&e->blocks), (long long)e->c->block_size,
                               (long long)ls_slot_num_free(&e->slots));
            }
            return ls_errf(e->err, "scheduler made no progress at step %lld (sched.max_batched_tokens %lld "
                           "too small for a block-aligned chunk of %lld?)", (long long)e->step,
                           (long long)e->c->max_batched_tokens, (long long)e->c->block_size);
        }
        if (run_step(e)) return ls_err_prefix(e->err, "step %lld: ", (long long)e->step);
        e->out->stats.steps++;
        e->step++;
        if (e->c->max_steps > 0 && e->out->stats.steps >= e->c->max_steps)
            return ls_errf(e->err, "stopped after sched.max_steps = %lld steps", (long long)e->c->max_steps);
    }
}

int ls_engine_run(const ls_model *m, const ls_engine_config *cfg, const ls_workload *wl,
                  ls_engine_result *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    engine e = {.m = m, .c = cfg, .bk = ls_backend_or_cpu(cfg->backend), .wl = wl, .err = err, .out = out};
    int rc = engine_init(&e);
    if (rc == 0) rc = check_workload(&e);
    if (rc == 0) rc = engine_loop(&e);
    if (rc == 0) rc = collect(&e);
    engine_free(&e);
    if (rc) ls_engine_result_free(out);
    return rc;
}

void ls_engine_result_free(ls_engine_result *r) {
    for (int64_t i = 0; i < r->n_seqs; i++) {
        free(r->seqs[i].tokens); free(r->seqs[i].logprobs); free(r->seqs[i].prov);
    }
    free(r->seqs);
    free(r->tenants);
    free(r->steps);
    memset(r, 0, sizeof *r);
}

void ls_workload_free(ls_workload *w) {
    for (int64_t r = 0; r < w->n_requests; r++) free(w->requests[r].prompt);
    free(w->requests);
    memset(w, 0, sizeof *w);
}
