/* Philox4x32-10 against the Random123 known-answer vectors, and the key contract
 * of ls_uniform: a pure function of (seed, request, rollout, position, draw). */
#include "engine/philox.h"
#include "tests/check.h"

#include <math.h>
#include <stdint.h>

static void kat(const uint32_t c[4], const uint32_t k[2], const uint32_t want[4]) {
    uint32_t out[4];
    ls_philox4x32(c, k, out);
    for (int i = 0; i < 4; i++)
        CHECKF(out[i] == want[i], "word %d: got 0x%08x want 0x%08x", i, out[i], want[i]);
}

int main(void) {
    {
        const uint32_t c[4] = {0, 0, 0, 0}, k[2] = {0, 0};
        const uint32_t w[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
        kat(c, k, w);
    }
    {
        const uint32_t c[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
        const uint32_t k[2] = {0xffffffff, 0xffffffff};
        const uint32_t w[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
        kat(c, k, w);
    }
    {
        const uint32_t c[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
        const uint32_t k[2] = {0xa4093822, 0x299f31d0};
        const uint32_t w[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
        kat(c, k, w);
    }

    /* Pure function: same key, same value, whatever was drawn in between. */
    double a = ls_uniform(42, 7, 3, 100, 0);
    for (uint64_t i = 0; i < 100; i++) (void)ls_uniform(42, i, i, i, 1);
    CHECK(ls_uniform(42, 7, 3, 100, 0) == a);

    /* Every component of the key matters, including the high halves of the 64-bit
     * ones (a truncation to 32 bits would make these equal). */
    CHECK(ls_uniform(43, 7, 3, 100, 0) != a);
    CHECK(ls_uniform(42, 8, 3, 100, 0) != a);
    CHECK(ls_uniform(42, 7, 4, 100, 0) != a);
    CHECK(ls_uniform(42, 7, 3, 101, 0) != a);
    CHECK(ls_uniform(42, 7, 3, 100, 1) != a);
    CHECK(ls_uniform(42 + (1ull << 32), 7, 3, 100, 0) != a);
    CHECK(ls_uniform(42, 7 + (1ull << 32), 3, 100, 0) != a);
    CHECK(ls_uniform(42, 7, 3 + (1ull << 32), 100, 0) != a);
    CHECK(ls_uniform(42, 7, 3, 100 + (1ull << 32), 0) != a);
    /* request and rollout are not interchangeable. */
    CHECK(ls_uniform(42, 3, 7, 100, 0) != ls_uniform(42, 7, 3, 100, 0));

    /* Range [0,1), 53-bit grid, and a sane mean / variance / bucket spread. */
    const int n = 200000;
    double sum = 0, sum2 = 0;
    int buckets[16] = {0};
    int in_range = 1, on_grid = 1;
    for (int i = 0; i < n; i++) {
        double u = ls_uniform(1, (uint64_t)i / 64, 0, (uint64_t)i % 64, 0);
        if (!(u >= 0.0 && u < 1.0)) in_range = 0;
        double scaled = u * 0x1.0p53;
        if (scaled != floor(scaled)) on_grid = 0;
        sum += u;
        sum2 += u * u;
        buckets[(int)(u * 16)]++;
    }
    CHECK(in_range);
    CHECK(on_grid);
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECKF(fabs(mean - 0.5) < 0.005, "mean %g", mean);
    CHECKF(fabs(var - 1.0 / 12) < 0.002, "var %g", var);
    double chi2 = 0, expect = n / 16.0;
    for (int b = 0; b < 16; b++) chi2 += (buckets[b] - expect) * (buckets[b] - expect) / expect;
    CHECKF(chi2 < 60, "chi2 %g over 15 dof", chi2); /* p ~ 1e-7 */

    /* The race's per-token uniforms: strictly inside (0, 1) on the odd multiples of 2^-53
     * (so -log(u) is finite and > 0), two tokens per block but not equal, every key part and
     * the token matter, and never the sampler's own ls_uniform value. */
    double tsum = 0;
    int t_range = 1, t_grid = 1, t_pair = 0, t_same_as_draw = 0;
    for (int i = 0; i < n; i++) {
        double u = ls_token_uniform(1, 5, 2, 77, (uint32_t)i);
        if (!(u > 0.0 && u < 1.0)) t_range = 0;
        double scaled = u * 0x1.0p53;
        if (scaled != floor(scaled) || fmod(scaled, 2.0) != 1.0) t_grid = 0;
        if (i % 2 == 1 && u == ls_token_uniform(1, 5, 2, 77, (uint32_t)i - 1)) t_pair++;
        if (u == ls_uniform(1, 5, 2, 77, (uint32_t)i)) t_same_as_draw++;
        tsum += u;
    }
    CHECK(t_range);
    CHECK(t_grid);
    CHECK(t_pair == 0);
    CHECK(t_same_as_draw == 0);
    CHECKF(fabs(tsum / n - 0.5) < 0.005, "token uniform mean %g", tsum / n);
    const double tu = ls_token_uniform(42, 7, 3, 100, 9);
    CHECK(ls_token_uniform(42, 7, 3, 100, 9) == tu);
    CHECK(ls_token_uniform(43, 7, 3, 100, 9) != tu);
    CHECK(ls_token_uniform(42, 8, 3, 100, 9) != tu);
    CHECK(ls_token_uniform(42, 7, 4, 100, 9) != tu);
    CHECK(ls_token_uniform(42, 7, 3, 100 + (1ull << 32), 9) != tu);
    CHECK(ls_token_uniform(42, 7, 3, 100, 9 + 2) != tu);
    CHECK(ls_token_uniform(42, 7, 3, 100, 0x80000009u) != tu);

    return check_status();
}
