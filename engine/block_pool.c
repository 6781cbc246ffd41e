#include "engine/block_pool.h"

#include <stdlib.h>
#include <string.h>

uint64_t ls_block_hash(uint64_t parent_hash, const int32_t *tokens, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a offset basis */
    /* Bytes are taken from values, not memory, so the hash is the same on any
     * endianness. n is hashed so a prefix of a block never collides by shape. */
    for (int i = 0; i < 8; i++) h = (h ^ ((parent_hash >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++) h = (h ^ (((uint64_t)n >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    for (int64_t t = 0; t < n; t++) {
        uint32_t v = (uint32_t)tokens[t];
        for (int i = 0; i < 4; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    }
    /* FNV alone leaves the high bits poorly mixed; splitmix64's finaliser fixes that. */
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

uint64_t ls_block_pool_hash(const ls_block_pool *p, uint64_t parent_hash, const int32_t *tokens,
                            int64_t n) {
    return p->hash_fn(parent_hash, tokens, n);
}

static int valid(const ls_block_pool *p, int64_t b) { return b >= 0 && b < p->num_blocks; }

static int32_t *block_tokens(const ls_block_pool *p, int64_t b) {
    return p->tokens + b * p->block_size; /* 64-bit: block_size * num_blocks checked at init */
}

void ls_block_pool_free(ls_block_pool *p) {
    free(p->blocks);
    free(p->tokens);
    free(p->table);
    memset(p, 0, sizeof *p);
}

int ls_block_pool_init(ls_block_pool *p, int64_t num_blocks, int64_t block_size, ls_err *err) {
    memset(p, 0, sizeof *p);
    if (num_blocks < 1) return ls_errf(err, "block pool: num_blocks must be >= 1, got %lld",
                                       (long long)num_blocks);
    if (block_size < 1) return ls_errf(err, "block pool: block_size must be >= 1, got %lld",
                                       (long long)block_size);
    int64_t ntok;
    if (num_blocks > ((int64_t)1 << 40) || __builtin_mul_overflow(num_blocks, block_size, &ntok) ||
        ntok > ((int64_t)1 << 40))
        return ls_errf(err, "block pool: %lld blocks of %lld tokens is too large",
                       (long long)num_blocks, (long long)block_size);
    int64_t cap = 16;
    while (cap < 2 * num_blocks) cap *= 2; /* load factor <= 1/2 keeps probes short */
    p->num_blocks = num_blocks;
    p->block_size = block_size;
    p->blocks = calloc((size_t)num_blocks, sizeof *p->blocks);
    p->tokens = calloc((size_t)ntok, sizeof *p->tokens);
    p->table = malloc((size_t)cap * sizeof *p->table);
    if (!p->blocks || !p->tokens || !p->table) {
        ls_block_pool_free(p);
        return ls_errf(err, "block pool: out of memory for %lld blocks", (long long)num_blocks);
    }
    p->table_mask = cap - 1;
    for (int64_t i = 0; i < cap; i++) p->table[i] = -1;
    for (int64_t b = 0; b < num_blocks; b++) {
        p->blocks[b].prev = b - 1;
        p->blocks[b].next = b + 1 < num_blocks ? b + 1 : -1;
    }
    p->free_head = 0;
    p->free_tail = num_blocks - 1;
    p->num_free = num_blocks;
    p->next_content_id = 1;
    p->hash_fn = ls_block_hash;
    return 0;
}

/* ---- free queue -------------------------------------------------------- */

static void queue_remove(ls_block_pool *p, int64_t b) {
    ls_block *k = &p->blocks[b];
    if (k->prev >= 0) p->blocks[k->prev].next = k->next; else p->free_head = k->next;
    if (k->next >= 0) p->blocks[k->next].prev = k->prev; else p->free_tail = k->prev;
    k->prev = k->next = -1;
    p->num_free--;
}

static void queue_push_tail(ls_block_pool *p, int64_t b) {
    ls_block *k = &p->blocks[b];
    k->prev = p->free_tail;
    k->next = -1;
    if (p->free_tail >= 0) p->blocks[p->free_tail].next = b; else p->free_head = b;
    p->free_tail = b;
    p->num_free++;
}

/* ---- hash table ---------------------------------------------------------- */

static int64_t table_home(const ls_block_pool *p, uint64_t h) {
    return (int64_t)(h & (uint64_t)p->table_mask);
}

static int same_content(const ls_block_pool *p, int64_t b, uint64_t h, uint64_t parent_id,
                        const int32_t *tokens) {
    const ls_block *k = &p->blocks[b];
    return k->hash == h && k->parent_content_id == parent_id &&
           memcmp(block_tokens(p, b), tokens, (size_t)p->block_size * sizeof *tokens) == 0;
}

static int64_t table_find(const ls_block_pool *p, uint64_t h, uint64_t parent_id,
                          const int32_t *tokens) {
    for (int64_t i = table_home(p, h);; i = (i + 1) & p->table_mask) {
        int64_t b = p->table[i];
        if (b < 0) return -1;
        if (same_content(p, b, h, parent_id, tokens)) return b;
    }
}

static void table_insert(ls_block_pool *p, int64_t b) {
    int64_t i = table_home(p, p->blocks[b].hash);
    while (p->table[i] >= 0) i = (i + 1) & p->table_mask;
    p->table[i] = b;
    p->blocks[b].in_table = 1;
}

/* Backward-shift deletion: no tombstones, so probe lengths never degrade. */
static void table_remove(ls_block_pool *p, int64_t b) {
    int64_t i = table_home(p, p->blocks[b].hash);
    while (p->table[i] != b) i = (i + 1) & p->table_mask;
    for (int64_t j = i;;) {
        j = (j + 1) & p->table_mask;
        if (p->table[j] < 0) break;
        int64_t home = table_home(p, p->blocks[p->table[j]].hash);
        /* The entry at j may move to the hole at i only if its home is not in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        p->table[i] = p->table[j];
        i = j;
    }
    p->table[i] = -1;
    p->blocks[b].in_table = 0;
}

static void unregister(ls_block_pool *p, int64_t b) {
    ls_block *k = &p->blocks[b];
    if (k->in_table) {
        table_remove(p, b);
        p->evictions++;
    }
    k->content_id = 0;
    k->parent_content_id = 0;
    k->hash = 0;
}

/* ---- public ------------------------------------------------------------ */

int64_t ls_block_pool_alloc(ls_block_pool *p) {
    int64_t b = p->free_head;
    if (b < 0) return -1;
    queue_remove(p, b);
    if (p->blocks[b].content_id) unregister(p, b);
    p->blocks[b].refcount = 1;
    p->blocks[b].generation++;
    return b;
}

int ls_block_pool_incref(ls_block_pool *p, int64_t block, ls_err *err) {
    if (!valid(p, block)) return ls_errf(err, "block pool: incref of block %lld out of range",
                                         (long long)block);
    if (p->blocks[block].refcount < 1)
        return ls_errf(err, "block pool: incref of free block %lld (use touch for a cache hit)",
                       (long long)block);
    p->blocks[block].refcount++;
    return 0;
}

int ls_block_pool_decref(ls_block_pool *p, int64_t block, ls_err *err) {
    if (!valid(p, block)) return ls_errf(err, "block pool: decref of block %lld out of range",
                                         (long long)block);
    if (p->blocks[block].refcount < 1)
        return ls_errf(err, "block pool: decref of free block %lld", (long long)block);
    if (--p->blocks[block].refcount == 0) queue_push_tail(p, block);
    return 0;
}

int64_t ls_block_pool_num_free(const ls_block_pool *p) { return p->num_free; }

/* Parent's content id, 0 for a sequence's first block; -1 if the parent is not
 * registered (then nothing can chain from it). */
static int parent_id(const ls_block_pool *p, int64_t parent, uint64_t *id, uint64_t *hash) {
    if (parent == -1) {
        *id = 0;
        *hash = LS_BLOCK_HASH_SEED;
        return 0;
    }
    if (!valid(p, parent) || !p->blocks[parent].content_id) return -1;
    *id = p->blocks[parent].content_id;
    *hash = p->blocks[parent].hash;
    return 0;
}

int64_t ls_block_pool_lookup(ls_block_pool *p, int64_t parent_block, const int32_t *tokens,
                             int64_t n) {
    uint64_t pid, phash;
    if (n != p->block_size || parent_id(p, parent_block, &pid, &phash) < 0) {
        p->misses++;
        return -1;
    }
    int64_t b = table_find(p, p->hash_fn(phash, tokens, n), pid, tokens);
    if (b < 0) p->misses++; else p->hits++;
    return b;
}

int ls_block_pool_register(ls_block_pool *p, int64_t block, int64_t parent_block,
                           const int32_t *tokens, int64_t n, ls_err *err) {
    if (!valid(p, block)) return ls_errf(err, "block pool: register of block %lld out of range",
                                         (long long)block);
    if (n != p->block_size)
        return ls_errf(err, "block pool: register of block %lld with %lld tokens: only full "
                       "blocks (%lld) are cached", (long long)block, (long long)n,
                       (long long)p->block_size);
    ls_block *k = &p->blocks[block];
    if (k->refcount < 1)
        return ls_errf(err, "block pool: register of free block %lld", (long long)block);
    if (parent_block == block)
        return ls_errf(err, "block pool: block %lld registered as its own parent", (long long)block);
    uint64_t pid, phash;
    if (parent_id(p, parent_block, &pid, &phash) < 0)
        return ls_errf(err, "block pool: register of block %lld: parent block %lld is not "
                       "registered", (long long)block, (long long)parent_block);
    uint64_t h = p->hash_fn(phash, tokens, n);
    if (k->content_id) {
        if (same_content(p, block, h, pid, tokens)) return k->in_table ? 0 : 1;
        return ls_errf(err, "block pool: block %lld is already registered with other content",
                       (long long)block);
    }
    int64_t twin = table_find(p, h, pid, tokens);
    memcpy(block_tokens(p, block), tokens, (size_t)n * sizeof *tokens);
    k->hash = h;
    k->parent_content_id = pid;
    if (twin >= 0) {
        k->content_id = p->blocks[twin].content_id;
        return 1;
    }
    k->content_id = p->next_content_id++;
    table_insert(p, block);
    return 0;
}

int ls_block_pool_touch(ls_block_pool *p, int64_t block, ls_err *err) {
    if (!valid(p, block)) return ls_errf(err, "block pool: touch of block %lld out of range",
                                         (long long)block);
    ls_block *k = &p->blocks[block];
    if (k->refcount == 0) {
        if (!k->in_table)
            return ls_errf(err, "block pool: touch of free block %lld that is not cached",
                           (long long)block);
        queue_remove(p, block);
    }
    k->refcount++;
    return 0;
}

int64_t ls_block_pool_cow(ls_block_pool *p, int64_t block, ls_err *err) {
    if (!valid(p, block)) return ls_errf(err, "block pool: cow of block %lld out of range",
                                         (long long)block);
    ls_block *k = &p->blocks[block];
    if (k->refcount < 1) return ls_errf(err, "block pool: cow of free block %lld", (long long)block);
    if (k->refcount == 1) {
        if (k->content_id)
            return ls_errf(err, "block pool: write into registered block %lld: cached full "
                           "blocks are immutable", (long long)block);
        return block;
    }
    int64_t nb = ls_block_pool_alloc(p);
    if (nb < 0) return ls_errf(err, "block pool: no free block for copy-on-write of block %lld",
                               (long long)block);
    k->refcount--; /* > 1 before, so it stays in use: never enters the queue here */
    p->cow_copies++;
    return nb;
}

int64_t ls_block_pool_refcount(const ls_block_pool *p, int64_t block) {
    return valid(p, block) ? p->blocks[block].refcount : -1;
}

uint64_t ls_block_pool_generation(const ls_block_pool *p, int64_t block) {
    return valid(p, block) ? p->blocks[block].generation : 0;
}

int ls_block_pool_is_cached(const ls_block_pool *p, int64_t block) {
    return valid(p, block) && p->blocks[block].in_table;
}

uint64_t ls_block_pool_content_id(const ls_block_pool *p, int64_t block) {
    return valid(p, block) ? p->blocks[block].content_id : 0;
}

uint64_t ls_block_pool_block_hash(const ls_block_pool *p, int64_t block) {
    return valid(p, block) && p->blocks[block].content_id ? p->blocks[block].hash : 0;
}

int ls_block_pool_check(const ls_block_pool *p, ls_err *err) {
    int64_t count = 0, prev = -1;
    for (int64_t b = p->free_head; b >= 0; b = p->blocks[b].next) {
        if (!valid(p, b) || ++count > p->num_blocks)
            return ls_errf(err, "free queue: bad link or cycle at block %lld", (long long)b);
        if (p->blocks[b].refcount != 0)
            return ls_errf(err, "free queue: block %lld has refcount %lld", (long long)b,
                           (long long)p->blocks[b].refcount);
        if (p->blocks[b].prev != prev)
            return ls_errf(err, "free queue: block %lld prev %lld, expected %lld", (long long)b,
                           (long long)p->blocks[b].prev, (long long)prev);
        prev = b;
    }
    if (prev != p->free_tail)
        return ls_errf(err, "free queue: tail %lld, walk ended at %lld", (long long)p->free_tail,
                       (long long)prev);
    if (count != p->num_free)
        return ls_errf(err, "free queue: %lld queued, num_free %lld", (long long)count,
                       (long long)p->num_free);
    int64_t zero = 0, in_table = 0, entries = 0;
    for (int64_t b = 0; b < p->num_blocks; b++) {
        const ls_block *k = &p->blocks[b];
        if (k->refcount < 0) return ls_errf(err, "block %lld: refcount %lld", (long long)b,
                                            (long long)k->refcount);
        if (k->refcount == 0) zero++;
        if (k->in_table) {
            in_table++;
            if (!k->content_id) return ls_errf(err, "block %lld: in table without content id",
                                               (long long)b);
            /* Must be reachable from its home, and the first match for its content. */
            if (table_find(p, k->hash, k->parent_content_id, block_tokens(p, b)) != b)
                return ls_errf(err, "block %lld: not the findable copy of its content",
                               (long long)b);
        }
    }
    if (zero != p->num_free)
        return ls_errf(err, "%lld blocks at refcount 0, num_free %lld", (long long)zero,
                       (long long)p->num_free);
    for (int64_t i = 0; i <= p->table_mask; i++) {
        int64_t b = p->table[i];
        if (b < 0) continue;
        entries++;
        if (!valid(p, b) || !p->blocks[b].in_table)
            return ls_errf(err, "table slot %lld: stale entry %lld", (long long)i, (long long)b);
    }
    if (entries != in_table)
        return ls_errf(err, "table has %lld entries, %lld blocks marked", (long long)entries,
                       (long long)in_table);
    return 0;
}
