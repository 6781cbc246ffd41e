/* Block pool: exact allocation/eviction orders, refcounts, copy-on-write, reuse
 * generations, and a prefix cache that never gives a false hit, even when every
 * hash collides. ls_block_pool_check() runs after each step that changes state. */
#include "engine/block_pool.h"
#include "tests/check.h"

#include <stdint.h>
#include <string.h>

static ls_err err;

#define OK(p) CHECKF(ls_block_pool_check((p), &err) == 0, "invariant: %s", err.msg)

static uint64_t hash_const(uint64_t parent, const int32_t *t, int64_t n) {
    (void)parent; (void)t; (void)n;
    return 42;
}

/* Four buckets straddling the end of a 16-slot table (14, 15, 0, 1): probe runs
 * wrap around, which exercises both sides of backward-shift deletion's wrapped
 * case. */
static uint64_t hash_tail(uint64_t parent, const int32_t *t, int64_t n) {
    (void)parent; (void)n;
    return 14 + (uint64_t)(t[0] % 4);
}

static void test_hash(void) {
    int32_t t[4] = {1, 2, 3, 4};
    /* Pinned: the hash must not change across builds or machines (traces keep it). */
    CHECK(ls_block_hash(LS_BLOCK_HASH_SEED, t, 4) == 0xa3214be3669211e8ull);
    CHECK(ls_block_hash(0, t, 0) == 0x68752350ae1d483full);
    uint64_t h = ls_block_hash(LS_BLOCK_HASH_SEED, t, 4);
    CHECK(ls_block_hash(LS_BLOCK_HASH_SEED + 1, t, 4) != h);
    CHECK(ls_block_hash(LS_BLOCK_HASH_SEED, t, 3) != h);
    int32_t u[4] = {1, 2, 3, 5}, v[4] = {2, 1, 3, 4}, w[4] = {1, 2, 3, 4 + (1 << 24)};
    CHECK(ls_block_hash(LS_BLOCK_HASH_SEED, u, 4) != h);
    CHECK(ls_block_hash(LS_BLOCK_HASH_SEED, v, 4) != h); /* order matters */
    CHECK(ls_block_hash(LS_BLOCK_HASH_SEED, w, 4) != h); /* high bytes matter */
}

static void test_alloc_free_order(void) {
    ls_block_pool p;
    CHECK(ls_block_pool_init(&p, 0, 4, &err) == -1);
    CHECK(ls_block_pool_init(&p, 4, 0, &err) == -1);
    CHECK(ls_block_pool_init(&p, 4, 2, &err) == 0);
    OK(&p);
    CHECK(ls_block_pool_num_free(&p) == 4);
    for (int64_t i = 0; i < 4; i++) {
        CHECK(ls_block_pool_alloc(&p) == i);
        CHECK(ls_block_pool_generation(&p, i) == 1);
        CHECK(ls_block_pool_refcount(&p, i) == 1);
    }
    CHECK(ls_block_pool_alloc(&p) == -1);
    CHECK(ls_block_pool_num_free(&p) == 0);
    OK(&p);
    /* Freed blocks queue at the tail in the order freed: 2, then 0, then 3. */
    CHECK(ls_block_pool_decref(&p, 2, &err) == 0);
    CHECK(ls_block_pool_incref(&p, 0, &err) == 0);
    CHECK(ls_block_pool_decref(&p, 0, &err) == 0); /* 2 -> 1: still in use */
    CHECK(ls_block_pool_num_free(&p) == 1);
    CHECK(ls_block_pool_decref(&p, 0, &err) == 0);
    CHECK(ls_block_pool_decref(&p, 3, &err) == 0);
    OK(&p);
    CHECK(ls_block_pool_num_free(&p) == 3);
    CHECK(ls_block_pool_alloc(&p) == 2);
    CHECK(ls_block_pool_alloc(&p) == 0);
    CHECK(ls_block_pool_generation(&p, 2) == 2);
    CHECK(ls_block_pool_generation(&p, 0) == 2);
    CHECK(ls_block_pool_generation(&p, 3) == 1);
    CHECK(ls_block_pool_alloc(&p) == 3);
    CHECK(ls_block_pool_generation(&p, 3) == 2);
    OK(&p);
    /* Misuse is an error, not a corruption. */
    CHECK(ls_block_pool_decref(&p, 1, &err) == 0);
    CHECK(ls_block_pool_decref(&p, 1, &err) == -1);
    CHECK(ls_block_pool_incref(&p, 1, &err) == -1);
    CHECK(ls_block_pool_touch(&p, 1, &err) == -1); /* free and not cached */
    CHECK(ls_block_pool_decref(&p, 4, &err) == -1);
    CHECK(ls_block_pool_incref(&p, -1, &err) == -1);
    CHECK(ls_block_pool_refcount(&p, 1) == 0);
    OK(&p);
    ls_block_pool_free(&p);
}

static void test_prefix_cache(void) {
    ls_block_pool p;
    CHECK(ls_block_pool_init(&p, 6, 4, &err) == 0);
    const int32_t A[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    const int32_t B[8] = {20, 21, 22, 23, 14, 15, 16, 17}; /* B's 2nd block == A's 2nd */

    int64_t a0 = ls_block_pool_alloc(&p), a1 = ls_block_pool_alloc(&p);
    CHECK(a0 == 0 && a1 == 1);
    CHECK(ls_block_pool_lookup(&p, -1, A, 4) == -1); /* not registered yet */
    CHECK(ls_block_pool_register(&p, a0, -1, A, 4, &err) == 0);
    CHECK(ls_block_pool_register(&p, a1, a0, A + 4, 4, &err) == 0);
    CHECK(ls_block_pool_register(&p, a1, a0, A + 4, 4, &err) == 0); /* same again: no-op */
    CHECK(ls_block_pool_register(&p, a1, a0, B, 4, &err) == -1);    /* immutable */
    CHECK(ls_block_pool_register(&p, a1, a0, A, 3, &err) == -1);    /* not full */
    CHECK(ls_block_pool_register(&p, 2, -1, B, 4, &err) == -1);     /* free block */
    CHECK(ls_block_pool_register(&p, a1, a1, A + 4, 4, &err) == -1);
    OK(&p);
    CHECK(ls_block_pool_is_cached(&p, a0) && ls_block_pool_is_cached(&p, a1));
    CHECK(ls_block_pool_content_id(&p, a0) != ls_block_pool_content_id(&p, a1));
    CHECK(ls_block_pool_block_hash(&p, a0) == ls_block_hash(LS_BLOCK_HASH_SEED, A, 4));
    CHECK(ls_block_pool_block_hash(&p, a1) ==
          ls_block_hash(ls_block_hash(LS_BLOCK_HASH_SEED, A, 4), A + 4, 4));

    p.hits = p.misses = 0;
    CHECK(ls_block_pool_lookup(&p, -1, A, 4) == a0);
    CHECK(ls_block_pool_lookup(&p, a0, A + 4, 4) == a1);
    CHECK(ls_block_pool_lookup(&p, -1, A + 4, 4) == -1); /* same tokens, other position */
    CHECK(ls_block_pool_lookup(&p, -1, A, 3) == -1);     /* partial block */
    CHECK(ls_block_pool_lookup(&p, 2, A + 4, 4) == -1);  /* unregistered parent */
    CHECK(p.hits == 2 && p.misses == 3);

    /* B: first block misses; its second block (same tokens as A's) must miss under
     * B's own parent. */
    int64_t b0 = ls_block_pool_alloc(&p);
    CHECK(b0 == 2);
    CHECK(ls_block_pool_register(&p, b0, -1, B, 4, &err) == 0);
    CHECK(ls_block_pool_lookup(&p, b0, B + 4, 4) == -1);

    /* Sequence A finishes: free in reverse so the tail block is evicted first. */
    CHECK(ls_block_pool_decref(&p, a1, &err) == 0);
    CHECK(ls_block_pool_decref(&p, a0, &err) == 0);
    OK(&p); /* queue: 3 4 5 1 0 */
    CHECK(ls_block_pool_num_free(&p) == 5);
    CHECK(ls_block_pool_is_cached(&p, a0)); /* free but cached */

    /* A new request with prefix A hits both and takes them out of the queue. */
    int64_t h0 = ls_block_pool_lookup(&p, -1, A, 4);
    CHECK(h0 == a0);
    CHECK(ls_block_pool_touch(&p, h0, &err) == 0);
    int64_t h1 = ls_block_pool_lookup(&p, h0, A + 4, 4);
    CHECK(h1 == a1);
    CHECK(ls_block_pool_touch(&p, h1, &err) == 0);
    CHECK(ls_block_pool_touch(&p, h1, &err) == 0); /* second sharer */
    CHECK(ls_block_pool_refcount(&p, a1) == 2);
    CHECK(ls_block_pool_num_free(&p) == 3);
    CHECK(ls_block_pool_generation(&p, a0) == 1); /* a hit is not a reallocation */
    OK(&p);
    CHECK(ls_block_pool_decref(&p, a1, &err) == 0);
    CHECK(ls_block_pool_decref(&p, a1, &err) == 0);
    CHECK(ls_block_pool_decref(&p, a0, &err) == 0);
    OK(&p); /* queue: 3 4 5 1 0 */

    /* Pressure: allocation walks the queue; 3 4 5 are uncached, then a1, then a0. */
    p.evictions = 0;
    CHECK(ls_block_pool_alloc(&p) == 3);
    CHECK(ls_block_pool_alloc(&p) == 4);
    CHECK(ls_block_pool_alloc(&p) == 5);
    CHECK(p.evictions == 0);
    CHECK(ls_block_pool_alloc(&p) == a1);
    CHECK(p.evictions == 1);
    CHECK(!ls_block_pool_is_cached(&p, a1));
    CHECK(ls_block_pool_generation(&p, a1) == 2);
    CHECK(ls_block_pool_lookup(&p, a0, A + 4, 4) == -1); /* evicted */
    CHECK(ls_block_pool_lookup(&p, -1, A, 4) == a0);     /* parent still cached */
    CHECK(ls_block_pool_alloc(&p) == a0);
    CHECK(p.evictions == 2);
    CHECK(ls_block_pool_lookup(&p, -1, A, 4) == -1);
    CHECK(ls_block_pool_alloc(&p) == -1);
    OK(&p);
    ls_block_pool_free(&p);
}

/* A child of an evicted parent must never be found under a new block that holds the
 * parent's tokens again: the old chain's identity died with the eviction. */
static void test_stale_child(void) {
    ls_block_pool p;
    CHECK(ls_block_pool_init(&p, 3, 2, &err) == 0);
    const int32_t A[4] = {1, 2, 3, 4};
    int64_t a0 = ls_block_pool_alloc(&p), a1 = ls_block_pool_alloc(&p);
    CHECK(ls_block_pool_register(&p, a0, -1, A, 2, &err) == 0);
    CHECK(ls_block_pool_register(&p, a1, a0, A + 2, 2, &err) == 0);
    CHECK(ls_block_pool_decref(&p, a0, &err) == 0); /* parent freed first: evicted first */
    CHECK(ls_block_pool_decref(&p, a1, &err) == 0);
    CHECK(ls_block_pool_alloc(&p) == 2);
    int64_t n0 = ls_block_pool_alloc(&p); /* evicts a0 */
    CHECK(n0 == a0);
    CHECK(ls_block_pool_is_cached(&p, a1)); /* orphan, still in the table */
    CHECK(ls_block_pool_register(&p, n0, -1, A, 2, &err) == 0);
    CHECK(ls_block_pool_lookup(&p, -1, A, 2) == n0);
    CHECK(ls_block_pool_lookup(&p, n0, A + 2, 2) == -1);
    OK(&p);
    ls_block_pool_free(&p);
}

/* Two blocks with equal content: the second is an alias (not findable), and its
 * children chain to the findable twin. */
static void test_duplicates(void) {
    ls_block_pool p;
    CHECK(ls_block_pool_init(&p, 8, 2, &err) == 0);
    const int32_t P[2] = {5, 6}, X[2] = {7, 8}, Y[2] = {9, 9};
    int64_t root = ls_block_pool_alloc(&p);
    CHECK(ls_block_pool_register(&p, root, -1, P, 2, &err) == 0);
    int64_t x1 = ls_block_pool_alloc(&p), x2 = ls_block_pool_alloc(&p);
    CHECK(ls_block_pool_register(&p, x1, root, X, 2, &err) == 0);
    CHECK(ls_block_pool_register(&p, x2, root, X, 2, &err) == 1);
    CHECK(ls_block_pool_register(&p, x2, root, X, 2, &err) == 1); /* idempotent */
    CHECK(!ls_block_pool_is_cached(&p, x2));
    CHECK(ls_block_pool_content_id(&p, x2) == ls_block_pool_content_id(&p, x1));
    int64_t c = ls_block_pool_alloc(&p);
    CHECK(ls_block_pool_register(&p, c, x2, Y, 2, &err) == 0);
    CHECK(ls_block_pool_lookup(&p, root, X, 2) == x1);
    CHECK(ls_block_pool_lookup(&p, x1, Y, 2) == c);
    CHECK(ls_block_pool_lookup(&p, x2, Y, 2) == c);
    /* A free alias is not a cache hit. */
    CHECK(ls_block_pool_decref(&p, x2, &err) == 0);
    CHECK(ls_block_pool_touch(&p, x2, &err) == -1);
    OK(&p);
    ls_block_pool_free(&p);
}

static void test_forced_collisions(void) {
    ls_block_pool p;
    CHECK(ls_block_pool_init(&p, 8, 2, &err) == 0);
    p.hash_fn = hash_const; /* every block collides with every other */
    const int32_t x[2] = {1, 1}, y[2] = {2, 2}, z[2] = {3, 3}, c[2] = {7, 7};
    int64_t ax = ls_block_pool_alloc(&p), ac = ls_block_pool_alloc(&p);
    int64_t by = ls_block_pool_alloc(&p), bc = ls_block_pool_alloc(&p);
    CHECK(ls_block_pool_register(&p, ax, -1, x, 2, &err) == 0);
    CHECK(ls_block_pool_register(&p, ac, ax, c, 2, &err) == 0);
    CHECK(ls_block_pool_register(&p, by, -1, y, 2, &err) == 0);
    /* Same tokens and same (colliding) parent hash as ac, different parent: a
     * parent-hash design would call this a duplicate of ac. */
    CHECK(ls_block_pool_register(&p, bc, by, c, 2, &err) == 0);
    CHECK(ls_block_pool_lookup(&p, -1, x, 2) == ax);
    CHECK(ls_block_pool_lookup(&p, -1, y, 2) == by);
    CHECK(ls_block_pool_lookup(&p, -1, z, 2) == -1);  /* hash hit, tokens differ */
    CHECK(ls_block_pool_lookup(&p, ax, c, 2) == ac);
    CHECK(ls_block_pool_lookup(&p, by, c, 2) == bc);  /* not ac */
    CHECK(ls_block_pool_lookup(&p, -1, c, 2) == -1);  /* not at the root */
    OK(&p);
    /* Removing from the middle of a collision run keeps the rest findable. */
    CHECK(ls_block_pool_decref(&p, ax, &err) == 0);
    for (int i = 0; i < 4; i++) (void)ls_block_pool_alloc(&p); /* 4..7 */
    CHECK(ls_block_pool_alloc(&p) == ax);                      /* evicts ax */
    OK(&p);
    CHECK(ls_block_pool_lookup(&p, -1, x, 2) == -1);
    CHECK(ls_block_pool_lookup(&p, -1, y, 2) == by);
    CHECK(ls_block_pool_lookup(&p, by, c, 2) == bc);
    ls_block_pool_free(&p);
}

static void test_cow(void) {
    ls_block_pool p;
    CHECK(ls_block_pool_init(&p, 3, 4, &err) == 0);
    int64_t b = ls_block_pool_alloc(&p);
    CHECK(ls_block_pool_cow(&p, b, &err) == b); /* exclusive: write in place */
    CHECK(p.cow_copies == 0);
    /* Fork: three rollouts share the prompt's partial last block. */
    CHECK(ls_block_pool_incref(&p, b, &err) == 0);
    CHECK(ls_block_pool_incref(&p, b, &err) == 0);
    int64_t c1 = ls_block_pool_cow(&p, b, &err);
    CHECK(c1 == 1);
    CHECK(ls_block_pool_refcount(&p, b) == 2 && ls_block_pool_refcount(&p, c1) == 1);
    int64_t c2 = ls_block_pool_cow(&p, b, &err);
    CHECK(c2 == 2);
    CHECK(ls_block_pool_refcount(&p, b) == 1);
    CHECK(ls_block_pool_cow(&p, b, &err) == b); /* last sharer writes in place */
    CHECK(p.cow_copies == 2);
    OK(&p);
    /* Pressure: no free block -> -1 and nothing changes. */
    CHECK(ls_block_pool_incref(&p, c1, &err) == 0);
    CHECK(ls_block_pool_cow(&p, c1, &err) == -1);
    CHECK(ls_block_pool_refcount(&p, c1) == 2);
    CHECK(p.cow_copies == 2);
    /* A registered full block is immutable. */
    const int32_t t[4] = {1, 2, 3, 4};
    CHECK(ls_block_pool_register(&p, c2, -1, t, 4, &err) == 0);
    CHECK(ls_block_pool_cow(&p, c2, &err) == -1);
    CHECK(ls_block_pool_decref(&p, c2, &err) == 0);
    CHECK(ls_block_pool_cow(&p, c2, &err) == -1); /* free */
    CHECK(ls_block_pool_cow(&p, 99, &err) == -1);
    OK(&p);
    ls_block_pool_free(&p);
}

/* Random operations under a hash with four wrapping buckets; the invariant check
 * (including "every cached block is findable") runs after every step, and every hit
 * is verified against a shadow copy of what each block was registered with. */
static void test_stress(void) {
    enum { NB = 8, BS = 2 };
    ls_block_pool p;
    CHECK(ls_block_pool_init(&p, NB, BS, &err) == 0);
    p.hash_fn = hash_tail;
    int32_t shadow_tok[NB][BS];
    uint64_t shadow_parent[NB];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int bad_hit = 0, bad_inv = 0;
    int64_t hits = 0;
    for (int step = 0; step < 20000; step++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int64_t b = (int64_t)(x % NB);
        int32_t t[BS] = {(int32_t)((x >> 8) % 6), (int32_t)((x >> 16) % 3)};
        int64_t parent = (x >> 24) % 2 == 0 ? (int64_t)((x >> 28) % NB) : -1;
        /* Mix tuned so blocks keep cycling through alloc, register, free and
         * eviction: decref outweighs incref, so the queue never stays empty. */
        unsigned op = (unsigned)((x >> 32) % 20);
        if (op < 5) {
            (void)ls_block_pool_alloc(&p);
        } else if (op < 11) {
            (void)ls_block_pool_decref(&p, b, &err);
        } else if (op < 15) {
            if (ls_block_pool_register(&p, b, parent, t, BS, &err) >= 0) {
                memcpy(shadow_tok[b], t, sizeof t);
                shadow_parent[b] = parent < 0 ? 0 : ls_block_pool_content_id(&p, parent);
            }
        } else if (op < 19) {
            int64_t h = ls_block_pool_lookup(&p, parent, t, BS);
            if (h >= 0) {
                hits++;
                uint64_t want = parent < 0 ? 0 : ls_block_pool_content_id(&p, parent);
                if (memcmp(shadow_tok[h], t, sizeof t) != 0 || shadow_parent[h] != want)
                    bad_hit++;
                (void)ls_block_pool_touch(&p, h, &err);
            }
        } else {
            (void)ls_block_pool_incref(&p, b, &err);
        }
        if (ls_block_pool_check(&p, &err) != 0 && bad_inv++ == 0)
            fprintf(stderr, "step %d: %s\n", step, err.msg);
    }
    CHECK(bad_inv == 0);
    CHECK(bad_hit == 0);
    CHECKF(hits > 100, "stress made only %lld hits", (long long)hits);
    CHECKF(p.evictions > 500, "stress made only %lld evictions", (long long)p.evictions);
    ls_block_pool_free(&p);
}

int main(void) {
    test_hash();
    test_alloc_free_order();
    test_prefix_cache();
    test_stale_child();
    test_duplicates();
    test_forced_collisions();
    test_cow();
    test_stress();
    return check_status();
}
