/* Paged KV block pool with refcounts, a deterministic free queue and a prefix
 * cache (bookkeeping only: the engine owns the KV buffers and computes
 * offsets as block * block_bytes in 64-bit arithmetic).
 *
 * Free queue (as in vLLM): allocation takes the head, a block whose refcount
 * drops to 0 is appended to the tail. A freed block that is registered in the
 * prefix cache stays there, still findable, until allocation reaches it and
 * evicts it; a hit on it (touch) takes it back out of the queue. So eviction
 * order is least-recently-freed first, and everything is deterministic.
 *
 * Prefix cache identity. Each registered full block gets a content id that
 * names its whole token chain: two blocks share one only if they hold the same
 * tokens AND their parents share one. Lookup and register take the parent BLOCK
 * (-1 for a sequence's first block), not a parent hash, and compare the stored
 * tokens and the parent's content id exactly; the 64-bit chained hash only
 * picks the table bucket. With a parent hash alone, two different prefixes
 * whose hashes collide at some level would share every cached descendant with
 * identical tokens; with the parent's content id a collision at any level costs
 * a probe, never a false hit (tested with a constant hash function). Content
 * ids are never reused, so a child of an evicted parent simply becomes
 * unreachable. */
#ifndef LS_BLOCK_POOL_H
#define LS_BLOCK_POOL_H

#include <stdint.h>

#include "engine/err.h"

/* Parent hash of a sequence's first block. ("lockstep" in ASCII.) */
#define LS_BLOCK_HASH_SEED 0x6c6f636b73746570ull

/* FNV-1a over (parent hash, n, tokens) as little-endian bytes, then the
 * splitmix64 finaliser: deterministic across runs and machines. */
uint64_t ls_block_hash(uint64_t parent_hash, const int32_t *tokens, int64_t n);

typedef uint64_t (*ls_block_hash_fn)(uint64_t parent_hash, const int32_t *tokens, int64_t n);

typedef struct ls_block {
    int64_t refcount;          /* 0 = in the free queue */
    uint64_t generation;       /* reuse_generation: +1 on every (re)allocation */
    int64_t prev, next;        /* free queue links, -1 at the ends / when not free */
    uint64_t content_id;       /* 0 = not registered; else identity of the token chain */
    int in_table;              /* findable by lookup (an alias of an equal block is not) */
    uint64_t hash;             /* chained hash of the content (when content_id != 0) */
    uint64_t parent_content_id;/* 0 for a sequence's first block */
} ls_block;

typedef struct ls_block_pool {
    int64_t num_blocks, block_size;
    ls_block *blocks;
    int32_t *tokens;           /* num_blocks * block_size, valid while registered */
    int64_t free_head, free_tail, num_free;
    int64_t *table;            /* open addressing, linear probing: block id or -1 */
    int64_t table_mask;
    uint64_t next_content_id;
    ls_block_hash_fn hash_fn;  /* ls_block_hash; tests may force collisions */
    /* telemetry */
    int64_t hits, misses, evictions, cow_copies;
} ls_block_pool;

int ls_block_pool_init(ls_block_pool *p, int64_t num_blocks, int64_t block_size, ls_err *err);
void ls_block_pool_free(ls_block_pool *p);

/* A block with refcount 1, or -1 when the queue is empty. Reusing a cached block
 * evicts its registration (evictions++). */
int64_t ls_block_pool_alloc(ls_block_pool *p);
/* incref: block must be in use (refcount >= 1); a free cached block needs touch. */
int ls_block_pool_incref(ls_block_pool *p, int64_t block, ls_err *err);
/* At 0 the block goes to the free queue tail, keeping its registration. */
int ls_block_pool_decref(ls_block_pool *p, int64_t block, ls_err *err);
int64_t ls_block_pool_num_free(const ls_block_pool *p);

/* Cached full block whose tokens are tokens[0..n) and whose parent is parent_block
 * (-1: first block of a sequence), or -1. Counts a hit or a miss. Does not take a
 * reference: call touch on a hit. */
int64_t ls_block_pool_lookup(ls_block_pool *p, int64_t parent_block, const int32_t *tokens,
                             int64_t n);
/* Registers a full block (n == block_size, refcount >= 1) as holding tokens after
 * parent_block (-1 or a registered block). Returns 0 when it became findable, 1
 * when an equal block is already cached (this one is recorded as an alias with
 * the same content id, so its children still chain correctly, but lookups keep
 * returning the first), -1 on error. Registering the same content again is a
 * no-op (0 or 1 as before); registering different content over a registered block
 * is an error: full blocks are immutable. */
int ls_block_pool_register(ls_block_pool *p, int64_t block, int64_t parent_block,
                           const int32_t *tokens, int64_t n, ls_err *err);
/* Takes a reference on a lookup hit: refcount++, leaving the free queue if it was
 * free-but-cached. A free block that is not findable is an error. */
int ls_block_pool_touch(ls_block_pool *p, int64_t block, ls_err *err);

/* Before writing into `block`: if shared (refcount > 1) allocates a new block,
 * drops one reference to the old one and returns the new id (cow_copies++; the
 * caller copies the contents); if exclusive returns `block`. -1 with a message
 * when no block is free or on misuse (a free block, or a registered one: full
 * registered blocks are immutable). */
int64_t ls_block_pool_cow(ls_block_pool *p, int64_t block, ls_err *err);

/* Hash the pool itself uses (honours a test override of hash_fn). */
uint64_t ls_block_pool_hash(const ls_block_pool *p, uint64_t parent_hash, const int32_t *tokens,
                            int64_t n);

int64_t ls_block_pool_refcount(const ls_block_pool *p, int64_t block);     /* -1 if out of range */
uint64_t ls_block_pool_generation(const ls_block_pool *p, int64_t block);  /* 0 if out of range */
int ls_block_pool_is_cached(const ls_block_pool *p, int64_t block);        /* findable by lookup */
/* Content id / chained hash of a registered block (0 if not registered): stable
 * keys for things attached to a prefix, such as Mamba state snapshots. */
uint64_t ls_block_pool_content_id(const ls_block_pool *p, int64_t block);
uint64_t ls_block_pool_block_hash(const ls_block_pool *p, int64_t block);

/* Verifies every invariant (queue links and count, refcount 0 <=> queued, table
 * <=> in_table, no duplicate findable content). O(num_blocks * probe); for tests
 * and debug mode. */
int ls_block_pool_check(const ls_block_pool *p, ls_err *err);

#endif
