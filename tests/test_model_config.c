/* config.json parsing: the fields that change the math, the per-layer structure derived
 * from the periods and offsets exactly as transformers' JambaConfig derives it, defaults,
 * and every unsupported or malformed value rejected with a message naming the field. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model_config.h"
#include "tests/check.h"

/* The base config: a field per line, "key": value. */
static const char *const base_keys[][2] = {
    {"model_type", "\"jamba\""},
    {"hidden_act", "\"silu\""},
    {"vocab_size", "128"},
    {"hidden_size", "64"},
    {"intermediate_size", "96"},
    {"num_hidden_layers", "8"},
    {"num_attention_heads", "4"},
    {"num_key_value_heads", "2"},
    {"num_experts", "4"},
    {"num_experts_per_tok", "2"},
    {"expert_layer_period", "2"},
    {"expert_layer_offset", "1"},
    {"attn_layer_period", "4"},
    {"attn_layer_offset", "2"},
    {"mamba_d_state", "16"},
    {"mamba_d_conv", "4"},
    {"mamba_expand", "2"},
    {"mamba_dt_rank", "\"auto\""},
    {"mamba_conv_bias", "true"},
    {"mamba_proj_bias", "false"},
    {"rms_norm_eps", "1e-06"},
    {"tie_word_embeddings", "false"},
    {"sliding_window", "null"},
    {"use_mamba_kernels", "false"},
};
#define N_BASE (sizeof base_keys / sizeof base_keys[0])

/* Builds the base config with overrides: pairs (key, raw JSON value); a NULL value drops
 * the key; keys not in the base are appended. The list ends with a NULL key. */
static char *make_json(const char *const *ov) {
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    if (!buf) abort();
    len += (size_t)snprintf(buf + len, cap - len, "{\n");
    int first = 1;
    int used[64] = {0};
    for (size_t i = 0; i < N_BASE; i++) {
        const char *val = base_keys[i][1];
        int dropped = 0;
        for (int j = 0; ov && ov[2 * j]; j++)
            if (!strcmp(ov[2 * j], base_keys[i][0])) {
                used[j] = 1;
                if (ov[2 * j + 1]) val = ov[2 * j + 1];
                else dropped = 1;
            }
        if (dropped) continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s  \"%s\": %s", first ? "" : ",\n",
                                base_keys[i][0], val);
        first = 0;
    }
    for (int j = 0; ov && ov[2 * j]; j++)
        if (!used[j] && ov[2 * j + 1]) {
            len += (size_t)snprintf(buf + len, cap - len, "%s  \"%s\": %s", first ? "" : ",\n",
                                    ov[2 * j], ov[2 * j + 1]);
            first = 0;
        }
    snprintf(buf + len, cap - len, "\n}\n");
    return buf;
}

static int parse(const char *const *ov, ls_model_config *c, ls_err *err) {
    char *j = make_json(ov);
    memset(err, 0, sizeof *err);
    int rc = ls_model_config_parse(j, strlen(j), "cfg.json", c, err);
    free(j);
    return rc;
}

/* A valid config parses; returns 0 on success. */
static int parse_ok(const char *const *ov, ls_model_config *c) {
    ls_err err;
    int rc = parse(ov, c, &err);
    CHECKF(rc == 0, "expected success, got: %s", err.msg);
    return rc;
}

/* An invalid config: rc must be -1, and the message must name `what` and each of the
 * NULL-terminated needles. */
#define EXPECT_ERR(ov, ...) expect_err(__LINE__, ov, (const char *const[]){__VA_ARGS__, NULL})
static void expect_err(int line, const char *const *ov, const char *const *needles) {
    ls_model_config c;
    ls_err err;
    int rc = parse(ov, &c, &err);
    CHECKF(rc == -1, "line %d: expected an error (-1), got %d", line, rc);
    CHECKF(strstr(err.msg, "cfg.json") != NULL, "line %d: message does not name the source: '%s'",
           line, err.msg);
    for (int i = 0; needles[i]; i++)
        CHECKF(strstr(err.msg, needles[i]) != NULL, "line %d: message '%s' does not mention '%s'",
               line, err.msg, needles[i]);
}

/* The layer structure as transformers' JambaConfig computes it:
 *   layers_block_type[i]  = "attention" if i % attn_layer_period == attn_layer_offset
 *   layers_num_experts[i] = num_experts if i % expert_layer_period == expert_layer_offset
 * and JambaDecoderLayer uses a dense MLP where num_experts == 1. */
static void check_layers(const ls_model_config *c, int64_t L, int64_t ap, int64_t ao,
                         int64_t ep, int64_t eo, int64_t ne) {
    CHECK(c->num_layers == L);
    int64_t na = 0;
    for (int64_t i = 0; i < L; i++) {
        ls_layer_kind want = i % ap == ao ? LS_LAYER_ATTN : LS_LAYER_MAMBA;
        int64_t wexp = (ne > 1 && i % ep == eo) ? ne : 1;
        CHECKF(c->layer_kind[i] == want, "L=%lld ap=%lld ao=%lld: layer %lld kind %d, want %d",
               (long long)L, (long long)ap, (long long)ao, (long long)i, (int)c->layer_kind[i],
               (int)want);
        CHECKF(c->layer_experts[i] == wexp, "ep=%lld eo=%lld ne=%lld: layer %lld experts %lld, want %lld",
               (long long)ep, (long long)eo, (long long)ne, (long long)i,
               (long long)c->layer_experts[i], (long long)wexp);
        CHECKF(ls_cfg_kind_index(c, i) == (want == LS_LAYER_ATTN ? na : i - na),
               "kind index of layer %lld", (long long)i);
        na += want == LS_LAYER_ATTN;
    }
    CHECK(ls_cfg_count(c, LS_LAYER_ATTN) == na);
    CHECK(ls_cfg_count(c, LS_LAYER_MAMBA) == L - na);
}

static void test_valid(void) {
    ls_model_config c;
    if (parse_ok(NULL, &c)) return;
    CHECK(c.vocab_size == 128);
    CHECK(c.hidden_size == 64);
    CHECK(c.intermediate_size == 96);
    CHECK(c.num_layers == 8);
    CHECK(c.num_heads == 4);
    CHECK(c.num_kv_heads == 2);
    CHECK(c.head_dim == 16);
    CHECK(c.rms_norm_eps == 1e-6);
    CHECK(c.num_experts == 4);
    CHECK(c.num_experts_per_tok == 2);
    CHECK(c.expert_layer_period == 2 && c.expert_layer_offset == 1);
    CHECK(c.attn_layer_period == 4 && c.attn_layer_offset == 2);
    CHECK(c.mamba_d_state == 16);
    CHECK(c.mamba_d_conv == 4);
    CHECK(c.mamba_expand == 2);
    CHECK(c.mamba_d_inner == 128);
    CHECK(c.mamba_dt_rank == 4);
    CHECK(c.mamba_conv_bias == 1);
    CHECK(c.mamba_proj_bias == 0);
    CHECK(c.tie_word_embeddings == 0);
    /* written out by hand for the base config: attention at 2 and 6, MoE on odd layers */
    static const ls_layer_kind kinds[8] = {LS_LAYER_MAMBA, LS_LAYER_MAMBA, LS_LAYER_ATTN,
                                           LS_LAYER_MAMBA, LS_LAYER_MAMBA, LS_LAYER_MAMBA,
                                           LS_LAYER_ATTN,  LS_LAYER_MAMBA};
    static const int64_t experts[8] = {1, 4, 1, 4, 1, 4, 1, 4};
    for (int i = 0; i < 8; i++) {
        CHECKF(c.layer_kind[i] == kinds[i], "layer %d kind", i);
        CHECKF(c.layer_experts[i] == experts[i], "layer %d experts", i);
    }
    static const int64_t kidx[8] = {0, 1, 0, 2, 3, 4, 1, 5};
    for (int i = 0; i < 8; i++) CHECKF(ls_cfg_kind_index(&c, i) == kidx[i], "kind index %d", i);
    CHECK(ls_cfg_count(&c, LS_LAYER_ATTN) == 2);
    CHECK(ls_cfg_count(&c, LS_LAYER_MAMBA) == 6);

    /* bools flipped, tied embeddings */
    const char *const ov[] = {"mamba_conv_bias", "false", "mamba_proj_bias", "true",
                              "tie_word_embeddings", "true", NULL};
    if (!parse_ok(ov, &c)) {
        CHECK(c.mamba_conv_bias == 0);
        CHECK(c.mamba_proj_bias == 1);
        CHECK(c.tie_word_embeddings == 1);
    }
}

/* Many period/offset/expert combinations against the transformers rule. */
static void test_layer_patterns(void) {
    static const int64_t periods[] = {1, 2, 3, 4, 8};
    static const int64_t nexp[] = {1, 2, 4};
    char L_s[32], ap_s[32], ao_s[32], ep_s[32], eo_s[32], ne_s[32], k_s[32];
    for (size_t pa = 0; pa < 5; pa++)
        for (int64_t ao = 0; ao < periods[pa]; ao++)
            for (size_t pe = 0; pe < 5; pe++)
                for (int64_t eo = 0; eo < periods[pe]; eo += 1 + periods[pe] / 3)
                    for (size_t ni = 0; ni < 3; ni++) {
                        int64_t L = 3 + (int64_t)(pa * 3 + pe) % 11;
                        snprintf(L_s, sizeof L_s, "%lld", (long long)L);
                        snprintf(ap_s, sizeof ap_s, "%lld", (long long)periods[pa]);
                        snprintf(ao_s, sizeof ao_s, "%lld", (long long)ao);
                        snprintf(ep_s, sizeof ep_s, "%lld", (long long)periods[pe]);
                        snprintf(eo_s, sizeof eo_s, "%lld", (long long)eo);
                        snprintf(ne_s, sizeof ne_s, "%lld", (long long)nexp[ni]);
                        snprintf(k_s, sizeof k_s, "%lld", (long long)(nexp[ni] > 1 ? 2 : 1));
                        const char *const ov[] = {"num_hidden_layers", L_s, "attn_layer_period", ap_s,
                                                  "attn_layer_offset", ao_s, "expert_layer_period", ep_s,
                                                  "expert_layer_offset", eo_s, "num_experts", ne_s,
                                                  "num_experts_per_tok", k_s, NULL};
                        ls_model_config c;
                        if (parse_ok(ov, &c)) continue;
                        check_layers(&c, L, periods[pa], ao, periods[pe], eo, nexp[ni]);
                    }
    /* num_experts = 1 with a top-k above it is a dense model: transformers accepts it */
    const char *const dense[] = {"num_experts", "1", "num_experts_per_tok", "2", NULL};
    ls_model_config c;
    if (!parse_ok(dense, &c))
        for (int i = 0; i < 8; i++) CHECKF(c.layer_experts[i] == 1, "dense layer %d", i);
}

static void test_defaults(void) {
    ls_model_config c;
    /* dt_rank "auto" = ceil(hidden / 16): 64 -> 4, 65 -> 5 (and missing = auto) */
    const char *const h65[] = {"hidden_size", "65", "num_attention_heads", "5",
                               "num_key_value_heads", "1", NULL};
    if (!parse_ok(h65, &c)) {
        CHECK(c.mamba_dt_rank == 5);
        CHECK(c.head_dim == 13);
        CHECK(c.mamba_d_inner == 130);
    }
    const char *const h80[] = {"hidden_size", "80", "mamba_dt_rank", NULL, NULL};
    if (!parse_ok(h80, &c)) CHECK(c.mamba_dt_rank == 5);
    const char *const h16[] = {"hidden_size", "16", NULL};
    if (!parse_ok(h16, &c)) CHECK(c.mamba_dt_rank == 1);
    const char *const h17[] = {"hidden_size", "68", "mamba_dt_rank", "\"auto\"", NULL};
    if (!parse_ok(h17, &c)) CHECK(c.mamba_dt_rank == 5);
    /* explicit dt_rank */
    const char *const dt6[] = {"mamba_dt_rank", "6", NULL};
    if (!parse_ok(dt6, &c)) CHECK(c.mamba_dt_rank == 6);
    /* head_dim: default hidden / heads, explicit value wins */
    const char *const hd[] = {"head_dim", "32", NULL};
    if (!parse_ok(hd, &c)) CHECK(c.head_dim == 32);
    const char *const hdn[] = {"head_dim", "null", NULL};
    if (!parse_ok(hdn, &c)) CHECK(c.head_dim == 16);
    const char *const h8[] = {"num_attention_heads", "8", "num_key_value_heads", "8", NULL};
    if (!parse_ok(h8, &c)) CHECK(c.head_dim == 8);
    /* num_key_value_heads defaults to num_attention_heads */
    const char *const nokv[] = {"num_key_value_heads", NULL, NULL};
    if (!parse_ok(nokv, &c)) CHECK(c.num_kv_heads == 4);
    const char *const nokv8[] = {"num_key_value_heads", NULL, "num_attention_heads", "8", NULL};
    if (!parse_ok(nokv8, &c)) { CHECK(c.num_kv_heads == 8); CHECK(c.head_dim == 8); }
    /* other defaults (transformers' JambaConfig) */
    const char *const few[] = {"num_experts", NULL, "num_experts_per_tok", NULL,
                               "expert_layer_period", NULL, "expert_layer_offset", NULL,
                               "attn_layer_period", NULL, "attn_layer_offset", NULL,
                               "mamba_d_state", NULL, "mamba_d_conv", NULL, "mamba_expand", NULL,
                               "mamba_conv_bias", NULL, "mamba_proj_bias", NULL,
                               "rms_norm_eps", NULL, "tie_word_embeddings", NULL,
                               "sliding_window", NULL, "hidden_act", NULL, NULL};
    if (!parse_ok(few, &c)) {
        CHECK(c.num_experts == 1);
        CHECK(c.expert_layer_period == 2 && c.expert_layer_offset == 1);
        CHECK(c.attn_layer_period == 8 && c.attn_layer_offset == 4);
        CHECK(c.mamba_d_state == 16 && c.mamba_d_conv == 4 && c.mamba_expand == 2);
        CHECK(c.mamba_conv_bias == 1 && c.mamba_proj_bias == 0);
        CHECK(c.rms_norm_eps == 1e-6);
        CHECK(c.tie_word_embeddings == 0);
        check_layers(&c, 8, 8, 4, 2, 1, 1);
    }
    /* rms_norm_eps as written */
    const char *const eps[] = {"rms_norm_eps", "1e-5", NULL};
    if (!parse_ok(eps, &c)) CHECK(c.rms_norm_eps == 1e-5);
}

static void test_errors(void) {
    EXPECT_ERR(((const char *const[]){"model_type", NULL, NULL}), "model_type");
    EXPECT_ERR(((const char *const[]){"model_type", "\"llama\"", NULL}), "model_type", "llama");
    EXPECT_ERR(((const char *const[]){"model_type", "3", NULL}), "model_type");
    EXPECT_ERR(((const char *const[]){"hidden_act", "\"gelu\"", NULL}), "hidden_act", "gelu");
    EXPECT_ERR(((const char *const[]){"hidden_size", NULL, NULL}), "hidden_size");
    EXPECT_ERR(((const char *const[]){"vocab_size", NULL, NULL}), "vocab_size");
    EXPECT_ERR(((const char *const[]){"num_hidden_layers", NULL, NULL}), "num_hidden_layers");
    EXPECT_ERR(((const char *const[]){"intermediate_size", NULL, NULL}), "intermediate_size");
    EXPECT_ERR(((const char *const[]){"num_attention_heads", NULL, NULL}), "num_attention_heads");
    EXPECT_ERR(((const char *const[]){"hidden_size", "\"64\"", NULL}), "hidden_size");
    EXPECT_ERR(((const char *const[]){"num_experts", "\"4\"", NULL}), "num_experts");
    EXPECT_ERR(((const char *const[]){"hidden_size", "64.0", NULL}), "hidden_size");
    EXPECT_ERR(((const char *const[]){"mamba_conv_bias", "1", NULL}), "mamba_conv_bias");
    EXPECT_ERR(((const char *const[]){"hidden_size", "-64", NULL}), "hidden_size");
    EXPECT_ERR(((const char *const[]){"vocab_size", "0", NULL}), "vocab_size");
    EXPECT_ERR(((const char *const[]){"intermediate_size", "-1", NULL}), "intermediate_size");
    EXPECT_ERR(((const char *const[]){"mamba_d_state", "-16", NULL}), "mamba_d_state");
    EXPECT_ERR(((const char *const[]){"num_hidden_layers", "100000", NULL}), "num_hidden_layers");
    EXPECT_ERR(((const char *const[]){"num_attention_heads", "5", "num_key_value_heads", "5", NULL}),
               "num_attention_heads", "hidden_size");
    EXPECT_ERR(((const char *const[]){"num_key_value_heads", "3", NULL}), "num_key_value_heads");
    EXPECT_ERR(((const char *const[]){"num_attention_heads", "8", "num_key_value_heads", "3", NULL}),
               "num_key_value_heads");
    EXPECT_ERR(((const char *const[]){"attn_layer_offset", "4", NULL}), "attn_layer_offset");
    EXPECT_ERR(((const char *const[]){"attn_layer_offset", "9", NULL}), "attn_layer_offset");
    EXPECT_ERR(((const char *const[]){"expert_layer_offset", "2", NULL}), "expert_layer_offset");
    EXPECT_ERR(((const char *const[]){"attn_layer_period", "0", NULL}), "attn_layer_period");
    EXPECT_ERR(((const char *const[]){"num_experts_per_tok", "5", NULL}), "num_experts_per_tok");
    EXPECT_ERR(((const char *const[]){"mamba_dt_rank", "\"fast\"", NULL}), "mamba_dt_rank");
    EXPECT_ERR(((const char *const[]){"mamba_dt_rank", "0", NULL}), "mamba_dt_rank");
    EXPECT_ERR(((const char *const[]){"mamba_dt_rank", "2.5", NULL}), "mamba_dt_rank");
    EXPECT_ERR(((const char *const[]){"sliding_window", "4096", NULL}), "sliding_window");
    EXPECT_ERR(((const char *const[]){"rms_norm_eps", "0", NULL}), "rms_norm_eps");
    EXPECT_ERR(((const char *const[]){"rms_norm_eps", "-1e-6", NULL}), "rms_norm_eps");
    EXPECT_ERR(((const char *const[]){"rms_norm_eps", "\"1e-6\"", NULL}), "rms_norm_eps");
    /* a duplicate key: JSON allows it, but which value wins is unspecified: reject */
    EXPECT_ERR(((const char *const[]){"vocab_size", "128,\n  \"hidden_size\": 64", NULL}),
               "hidden_size", "duplicate");
}

static void test_bad_json(void) {
    ls_model_config c;
    ls_err err;
    struct { const char *text; const char *where; } cases[] = {
        {"{\n  \"model_type\": \"jamba\",\n  \"hidden_size\": 64,,\n}", "cfg.json:3:"},
        {"{\n  \"model_type\": \"jamba\"\n  \"hidden_size\": 64\n}", "cfg.json:3:"},
        {"{\"model_type\": \"jamba\"} trailing", "cfg.json:1:"},
        {"{\n\n\n  \"model_type\": \"jam", "cfg.json:4:"},
        {"", "cfg.json:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = ls_model_config_parse(cases[i].text, strlen(cases[i].text), "cfg.json", &c, &err);
        CHECKF(rc == -1, "bad JSON %zu: rc %d", i, rc);
        const char *at = strstr(err.msg, cases[i].where);
        CHECKF(at != NULL, "bad JSON %zu: message '%s' lacks '%s'", i, err.msg, cases[i].where);
        /* LINE:COLUMN: both numbers present */
        int line = -1, col = -1;
        CHECKF(sscanf(err.msg, "cfg.json:%d:%d:", &line, &col) == 2 && line >= 1 && col >= 0,
               "bad JSON %zu: no line:column in '%s'", i, err.msg);
    }
    /* the column points at the offending character of line 3 ("  \"hidden_size\": 64,,") */
    memset(&err, 0, sizeof err);
    const char *t = cases[0].text;
    ls_model_config_parse(t, strlen(t), "cfg.json", &c, &err);
    int line = 0, col = 0;
    if (sscanf(err.msg, "cfg.json:%d:%d:", &line, &col) == 2)
        CHECKF(line == 3 && col >= 19 && col <= 21, "line:column %d:%d in '%s'", line, col, err.msg);
    /* not an object */
    memset(&err, 0, sizeof err);
    CHECK(ls_model_config_parse("[1, 2]", 6, "cfg.json", &c, &err) == -1);
    CHECKF(strstr(err.msg, "cfg.json") != NULL, "'%s'", err.msg);
    /* length is honoured: a valid prefix of a longer buffer */
    char *j = make_json(NULL);
    size_t n = strlen(j);
    char *k = malloc(n + 8);
    if (k) {
        memcpy(k, j, n);
        memcpy(k + n, "garbage", 8);
        memset(&err, 0, sizeof err);
        CHECKF(ls_model_config_parse(k, n, "cfg.json", &c, &err) == 0, "prefix: %s", err.msg);
        free(k);
    }
    free(j);
}

static void test_load(void) {
    ls_model_config c;
    ls_err err = {{0}};
    int rc = ls_model_config_load("/nonexistent/lockstep-no-such-model", &c, &err);
    CHECK(rc == -1);
    CHECKF(strstr(err.msg, "config.json") != NULL, "'%s'", err.msg);
    CHECKF(strstr(err.msg, "/nonexistent/lockstep-no-such-model") != NULL, "'%s'", err.msg);
    /* the golden configs load */
    const char *src = getenv("LS_SOURCE_ROOT");
    if (!src) src = ".";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/golden/jamba-tiny-a", src);
    memset(&err, 0, sizeof err);
    rc = ls_model_config_load(dir, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(c.hidden_size == 64 && c.mamba_dt_rank == 4 && c.num_kv_heads == 2);
        check_layers(&c, c.num_layers, 2, 1, 2, 1, 4);
    }
    snprintf(dir, sizeof dir, "%s/golden/jamba-small-c", src);
    memset(&err, 0, sizeof err);
    rc = ls_model_config_load(dir, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(c.num_layers == 8 && c.mamba_dt_rank == 8 && c.head_dim == 16);
        CHECK(c.layer_kind[2] == LS_LAYER_ATTN && c.layer_kind[6] == LS_LAYER_ATTN);
        check_layers(&c, 8, 4, 2, 2, 1, 4);
    }
}

int main(void) {
    test_valid();
    test_layer_patterns();
    test_defaults();
    test_errors();
    test_bad_json();
    test_load();
    return check_status();
}
