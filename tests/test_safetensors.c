/* test_safetensors.c — safetensors writer/reader round trip with metadata, F16/BF16
 * conversion, and every malformed, malicious or truncated file the reader must refuse. */

#include "nnmask.h"

#include <fcntl.h>
#include "testutil.h"

#include <stdint.h>
#include <unistd.h>

#include "tu_files.h"

/* A file from a JSON header and a data buffer; hlen_override (if nonzero)
 * replaces the length prefix. */
static uint8_t *mkfile(const char *json, const void *data, size_t dlen, uint64_t hlen_override,
                       size_t *len) {
    size_t hl = strlen(json);
    *len = 8 + hl + dlen;
    uint8_t *b = malloc(*len);
    uint64_t v = hlen_override ? hlen_override : hl;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    memcpy(b + 8, json, hl);
    if (dlen) memcpy(b + 8 + hl, data, dlen);
    return b;
}

/* The file must be refused by nn_st_open (written to disk) and by
 * nn_st_open_memory, with the file name and each `want` string in the error. */
static void expect_open_fail(const char *fname, const char *json, const void *data, size_t dlen,
                             uint64_t hlen, const char *want1, const char *want2) {
    size_t len;
    uint8_t *b = mkfile(json, data, dlen, hlen, &len);
    const char *path = tpath(fname);
    write_file(path, b, len);
    nn_st *st = nn_st_open(path);
    CHECK(st == NULL, "%s: should be refused", fname);
    nn_st_close(st);
    CHECK(strstr(nn_error(), path) != NULL, "%s: error '%s' does not name the file", fname,
          nn_error());
    CHECK(strstr(nn_error(), want1) != NULL, "%s: error '%s' lacks '%s'", fname, nn_error(), want1);
    if (want2)
        CHECK(strstr(nn_error(), want2) != NULL, "%s: error '%s' lacks '%s'", fname, nn_error(),
              want2);
    st = nn_st_open_memory(b, len, fname);
    CHECK(st == NULL && strstr(nn_error(), fname) && strstr(nn_error(), want1),
          "%s (memory): '%s'", fname, nn_error());
    nn_st_close(st);
    free(b);
}

static nn_st *open_ok(const char *name, const char *json, const void *data, size_t dlen) {
    size_t len;
    uint8_t *b = mkfile(json, data, dlen, 0, &len);
    nn_st *st = nn_st_open_memory(b, len, name);
    free(b);
    CHECK(st != NULL, "%s: %s", name, nn_error());
    return st;
}

static void test_roundtrip(void) {
    float a[2 * 3], conv[3 * 3 * 2 * 4], bias[4] = {1e-8f, -3.25f, 65504.f, 1e30f}, sc = 42.f;
    for (int i = 0; i < 6; i++) a[i] = i * 0.5f - 1.f;
    for (int i = 0; i < 72; i++) conv[i] = sinf((float)i) * 0.1f;
    int64_t sa[2] = {2, 3}, sconv[4] = {3, 3, 2, 4}, sb[1] = {4}, se[2] = {0, 5};

    nn_st_writer *w = nn_st_writer_new();
    CHECK(nn_st_writer_meta(w, "format", "pt") == 0, "%s", nn_error());
    CHECK(nn_st_writer_meta(w, "note", "quote \" backslash \\ tab\t newline\n utf8 \xc3\xa9") == 0,
          "%s", nn_error());
    CHECK(nn_st_writer_meta(w, "epoch", "1") == 0, "%s", nn_error());
    CHECK(nn_st_writer_meta(w, "epoch", "7") == 0, "replacing a key: %s", nn_error());
    CHECK(nn_st_writer_add_f32(w, "head/dense \"w\"", a, 2, sa) == 0, "%s", nn_error());
    CHECK(nn_st_writer_add_f32(w, "conv", conv, 4, sconv) == 0, "%s", nn_error());
    CHECK(nn_st_writer_add_f32(w, "bias", bias, 1, sb) == 0, "%s", nn_error());
    CHECK(nn_st_writer_add_f32(w, "scalar", &sc, 0, NULL) == 0, "%s", nn_error());
    CHECK(nn_st_writer_add_f32(w, "empty", NULL, 2, se) == 0, "%s", nn_error());
    CHECK(nn_st_writer_add_f32(w, "conv", conv, 4, sconv) == -1, "duplicate tensor accepted");
    CHECK(strstr(nn_error(), "'conv'") != NULL, "duplicate error: %s", nn_error());
    const char *path = tpath("model.safetensors");
    /* a failed add poisons the writer: no partial file */
    CHECK(nn_st_writer_save(w, path) == -1 && access(path, F_OK) != 0,
          "save after a failed add must refuse");
    nn_st_writer_free(w);

    w = nn_st_writer_new();
    nn_st_writer_meta(w, "format", "pt");
    nn_st_writer_meta(w, "note", "quote \" backslash \\ tab\t newline\n utf8 \xc3\xa9");
    nn_st_writer_meta(w, "epoch", "7");
    nn_st_writer_add_f32(w, "head/dense \"w\"", a, 2, sa);
    nn_st_writer_add_f32(w, "conv", conv, 4, sconv);
    nn_st_writer_add_f32(w, "bias", bias, 1, sb);
    nn_st_writer_add_f32(w, "scalar", &sc, 0, NULL);
    nn_st_writer_add_f32(w, "empty", NULL, 2, se);
    CHECK(nn_st_writer_save(w, path) == 0, "%s", nn_error());
    CHECK(nn_st_writer_save(w, tpath("no/such/dir/x.safetensors")) == -1 &&
              strstr(nn_error(), "no/such/dir"),
          "save into a missing directory: %s", nn_error());
    nn_st_writer_free(w);

    /* layout: 8-byte length, header padded to 8, data right after */
    uint8_t *raw;
    size_t rawlen;
    CHECK(nn_file_read(path, &raw, &rawlen, 1 << 20) == 0, "%s", nn_error());
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
    CHECK(hl % 8 == 0 && raw[8] == '{', "header length %llu not 8-aligned", (unsigned long long)hl);
    CHECK(8 + hl + (6 + 72 + 4 + 1) * 4 == rawlen, "file size %zu, header %llu", rawlen,
          (unsigned long long)hl);

    for (int pass = 0; pass < 2; pass++) {
        nn_st *st = pass == 0 ? nn_st_open(path) : nn_st_open_memory(raw, rawlen, "mem");
        CHECK(st != NULL, "%s", nn_error());
        if (!st) continue;
        CHECK(nn_st_count(st) == 5, "count %d", nn_st_count(st));
        CHECK(nn_st_meta_count(st) == 3, "meta count %d", nn_st_meta_count(st));
        CHECK(nn_st_meta(st, "format") && !strcmp(nn_st_meta(st, "format"), "pt"), "format");
        CHECK(nn_st_meta(st, "epoch") && !strcmp(nn_st_meta(st, "epoch"), "7"), "epoch");
        CHECK(nn_st_meta(st, "note") &&
                  !strcmp(nn_st_meta(st, "note"),
                          "quote \" backslash \\ tab\t newline\n utf8 \xc3\xa9"),
              "escaped metadata: '%s'", nn_st_meta(st, "note"));
        CHECK(nn_st_meta(st, "missing") == NULL, "absent key");
        int keys = 0;
        for (int i = 0; i < nn_st_meta_count(st); i++)
            keys += nn_st_meta(st, nn_st_meta_key(st, i)) != NULL;
        CHECK(keys == 3, "meta keys");
        int i = nn_st_find(st, "conv");
        const char *dt;
        int nd;
        int64_t sh[NN_ST_MAX_DIMS];
        CHECK(i >= 0 && nn_st_info(st, i, &dt, &nd, sh) == 0 && !strcmp(dt, "F32") && nd == 4 &&
                  sh[0] == 3 && sh[3] == 4,
              "conv info");
        CHECK(!strcmp(nn_st_name(st, i), "conv"), "name");
        CHECK(nn_st_find(st, "nope") == -1, "find missing");
        CHECK(nn_st_info(st, 99, &dt, &nd, sh) == -1, "info out of range");
        float ra[6], rc[72], rb[4], rs = 0, dummy = 0;
        CHECK(nn_st_read_f32(st, "head/dense \"w\"", ra, 2, sa) == 0, "%s", nn_error());
        CHECK(nn_st_read_f32(st, "conv", rc, 4, sconv) == 0, "%s", nn_error());
        CHECK(nn_st_read_f32(st, "bias", rb, 1, sb) == 0, "%s", nn_error());
        CHECK(nn_st_read_f32(st, "scalar", &rs, 0, NULL) == 0, "%s", nn_error());
        CHECK(nn_st_read_f32(st, "empty", &dummy, 2, se) == 0, "%s", nn_error());
        CHECK(!memcmp(ra, a, sizeof a) && !memcmp(rc, conv, sizeof conv) &&
                  !memcmp(rb, bias, sizeof bias) && rs == 42.f,
              "values differ after the round trip");
        /* wrong shape / missing tensor name the file and tensor */
        int64_t wrong[2] = {3, 2};
        CHECK(nn_st_read_f32(st, "head/dense \"w\"", ra, 2, wrong) == -1 &&
                  strstr(nn_error(), "shape [2,3], expected [3,2]") &&
                  strstr(nn_error(), "head/dense"),
              "wrong shape: %s", nn_error());
        CHECK(nn_st_read_f32(st, "conv", rc, 3, sconv) == -1 &&
                  strstr(nn_error(), "expected [3,3,2]"),
              "wrong ndim: %s", nn_error());
        CHECK(nn_st_read_f32(st, "missing.weight", ra, 2, sa) == -1 &&
                  strstr(nn_error(), "'missing.weight' not found") &&
                  strstr(nn_error(), pass ? "mem" : "model.safetensors"),
              "missing tensor: %s", nn_error());
        nn_st_close(st);
    }
    free(raw);

    /* writer refuses bad input */
    w = nn_st_writer_new();
    int64_t neg[1] = {-1};
    CHECK(nn_st_writer_add_f32(w, "", a, 1, sb) == -1, "empty name accepted");
    CHECK(nn_st_writer_add_f32(w, "__metadata__", a, 1, sb) == -1, "reserved name accepted");
    CHECK(nn_st_writer_add_f32(w, "n", a, 1, neg) == -1, "negative dim accepted");
    CHECK(nn_st_writer_add_f32(w, "n", a, 9, sconv) == -1, "9 dims accepted");
    nn_st_writer_free(w);
}

static void test_half_types(void) {
    /* F16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), -0, 2^-14 (min normal) */
    uint16_t h[7] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000, 0x0400};
    float hv[7] = {1.f, -2.f, 0.5f, 65504.f, 5.9604645e-8f, -0.f, 6.1035156e-5f};
    /* BF16: 1.5, -0.15625, 3.0e38 rounded (0x7F61) */
    uint16_t bf[3] = {0x3FC0, 0xBE20, 0x7F61};
    uint8_t data[20];
    memcpy(data, h, 14);
    memcpy(data + 14, bf, 6);
    nn_st *st = open_ok("half.safetensors",
                        "{\"h\":{\"dtype\":\"F16\",\"shape\":[7],\"data_offsets\":[0,14]},"
                        "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[14,20]}}",
                        data, sizeof data);
    if (!st) return;
    float out[7];
    int64_t s7[1] = {7}, s3[1] = {3};
    CHECK(nn_st_read_f32(st, "h", out, 1, s7) == 0, "%s", nn_error());
    int bad = 0;
    for (int i = 0; i < 7; i++) bad += out[i] != hv[i] || signbit(out[i]) != signbit(hv[i]);
    CHECK(bad == 0, "F16: %d wrong (%g %g %g %g %g)", bad, out[0], out[1], out[2], out[3], out[4]);
    CHECK(nn_st_read_f32(st, "b", out, 1, s3) == 0, "%s", nn_error());
    uint32_t top = 0x7F610000u;
    float big;
    memcpy(&big, &top, 4);
    CHECK(out[0] == 1.5f && out[1] == -0.15625f && out[2] == big, "BF16: %g %g %g", out[0],
          out[1], out[2]);
    nn_st_close(st);

    /* F16 Inf and NaN are refused with the index */
    uint16_t hi[3] = {0x3C00, 0x7C00, 0x7E00};
    st = open_ok("hinf", "{\"x\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}", hi, 6);
    CHECK(st && nn_st_read_f32(st, "x", out, 1, s3) == -1 &&
              strstr(nn_error(), "tensor 'x' holds Inf at index 1") && strstr(nn_error(), "hinf"),
          "F16 Inf: %s", nn_error());
    nn_st_close(st);
}

static void test_bad_values(void) {
    float v[4] = {1.f, 2.f, NAN, 4.f};
    int64_t s4[1] = {4};
    float out[4];
    nn_st *st = open_ok("nan.safetensors",
                        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[16,32]}}",
                        (float[8]){1, 2, NAN, 4, 0, 0, 0, 0}, 32);
    if (!st) return;
    CHECK(nn_st_read_f32(st, "w", out, 1, s4) == -1 &&
              strstr(nn_error(), "nan.safetensors: tensor 'w' holds NaN at index 2"),
          "NaN: %s", nn_error());
    int64_t s2[1] = {2};
    CHECK(nn_st_read_f32(st, "i", out, 1, s2) == -1 &&
              strstr(nn_error(), "tensor 'i': dtype I64, expected F32"),
          "dtype: %s", nn_error());
    const char *dt;
    CHECK(nn_st_info(st, nn_st_find(st, "i"), &dt, NULL, NULL) == 0 && !strcmp(dt, "I64"),
          "I64 info");
    nn_st_close(st);
    v[2] = -INFINITY;
    st = open_ok("inf", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", v, 16);
    CHECK(st && nn_st_read_f32(st, "w", out, 1, s4) == -1 && strstr(nn_error(), "Inf at index 2"),
          "Inf: %s", nn_error());
    nn_st_close(st);
}

static void test_malformed(void) {
    float d[8] = {0};
    const char *ok1 = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

    /* too short, empty, missing, directory */
    expect_open_fail("zerohdr", "", d, 3, 0, "not a JSON object", NULL);
    {
        write_file(tpath("short.safetensors"), "\x05\0\0\0\0", 5);
        nn_st *st0 = nn_st_open(tpath("short.safetensors"));
        CHECK(!st0 && strstr(nn_error(), "short.safetensors") && strstr(nn_error(), "too short"),
              "5-byte file: %s", nn_error());
        write_file(tpath("empty.safetensors"), "", 0);
        nn_st *st = nn_st_open(tpath("empty.safetensors"));
        CHECK(!st && strstr(nn_error(), "empty.safetensors") && strstr(nn_error(), "too short"),
              "empty file: %s", nn_error());
        st = nn_st_open(tpath("missing.safetensors"));
        CHECK(!st && strstr(nn_error(), "missing.safetensors") && strstr(nn_error(), "cannot open"),
              "missing file: %s", nn_error());
        st = nn_st_open(tmpdir);
        CHECK(!st && strstr(nn_error(), tmpdir), "directory: %s", nn_error());
    }
    /* header length past EOF, huge */
    expect_open_fail("past.safetensors", ok1, d, 16, 5000, "runs past the end", NULL);
    expect_open_fail("huge.safetensors", ok1, d, 16, (uint64_t)1 << 62, "exceeds the limit", NULL);
    expect_open_fail("huge2.safetensors", ok1, d, 16, ~(uint64_t)0, "exceeds the limit", NULL);
    /* JSON */
    expect_open_fail("badjson.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2]", d, 16, 0,
                     "not valid JSON", NULL);
    expect_open_fail("array.safetensors", "[1,2,3]", d, 0, 0, "not a JSON object", NULL);
    expect_open_fail("junk.safetensors", "{}  xyz", d, 0, 0, "junk after", NULL);
    expect_open_fail("notobj.safetensors", "{\"w\":5}", d, 0, 0, "'w'", "not an object");
    /* offsets */
    expect_open_fail("oob.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]}}", d, 16,
                     0, "tensor 'w'", "past the end");
    expect_open_fail("beginend.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,0]}}", d, 32,
                     0, "tensor 'w'", "begin 16 > end 0");
    expect_open_fail("negoff.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[-16,0]}}", d, 32,
                     0, "tensor 'w'", "data_offsets");
    expect_open_fail("hugeoff.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,"
                     "18446744073709551616]}}",
                     d, 32, 0, "tensor 'w'", "data_offsets");
    expect_open_fail("oneoff.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0]}}", d, 16, 0,
                     "tensor 'w'", "data_offsets");
    /* shapes */
    expect_open_fail("product.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", d, 32, 0,
                     "tensor 'w'", "give 24 bytes");
    expect_open_fail("negdim.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}", d, 16,
                     0, "tensor 'w'", "shape[0]");
    expect_open_fail("fracdim.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2.5],\"data_offsets\":[0,16]}}", d, 16,
                     0, "tensor 'w'", "shape[1]");
    expect_open_fail("strdim.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\",2],\"data_offsets\":[0,16]}}", d,
                     16, 0, "tensor 'w'", "shape[0]");
    expect_open_fail("overflow.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                     "\"data_offsets\":[0,16]}}",
                     d, 16, 0, "tensor 'w'", "overflow");
    expect_open_fail("ninedims.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],"
                     "\"data_offsets\":[0,16]}}",
                     d, 16, 0, "tensor 'w'", "9 dimensions");
    /* dtype */
    expect_open_fail("dtype.safetensors",
                     "{\"w\":{\"dtype\":\"F31\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", d, 16, 0,
                     "tensor 'w'", "unknown dtype 'F31'");
    expect_open_fail("nodtype.safetensors", "{\"w\":{\"shape\":[2,2],\"data_offsets\":[0,16]}}", d,
                     16, 0, "tensor 'w'", "dtype");
    /* duplicates, metadata */
    expect_open_fail("dup.safetensors",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                     d, 8, 0, "tensor 'w'", "twice");
    expect_open_fail("meta.safetensors", "{\"__metadata__\":{\"epoch\":3}}", d, 0, 0, "epoch",
                     "not a string");
    expect_open_fail("meta2.safetensors", "{\"__metadata__\":[\"a\"]}", d, 0, 0, "__metadata__",
                     "not an object");
    expect_open_fail("metadup.safetensors", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", d, 0, 0,
                     "'a'", "twice");
    /* truncated data: a valid file cut short */
    {
        nn_st_writer *w = nn_st_writer_new();
        float big[256] = {0};
        int64_t s[2] = {16, 16};
        nn_st_writer_add_f32(w, "layer.kernel", big, 2, s);
        nn_st_writer_save(w, tpath("full.safetensors"));
        nn_st_writer_free(w);
        uint8_t *raw;
        size_t n;
        if (nn_file_read(tpath("full.safetensors"), &raw, &n, 1 << 20) == 0) {
            write_file(tpath("cut.safetensors"), raw, n - 100);
            nn_st *st = nn_st_open(tpath("cut.safetensors"));
            CHECK(!st && strstr(nn_error(), "cut.safetensors") &&
                      strstr(nn_error(), "'layer.kernel'") && strstr(nn_error(), "truncated"),
                  "truncated data: %s", nn_error());
            /* a file cut short after it was opened (tensors are read on demand):
             * a clear error, no crash; the memory copy is unaffected */
            write_file(tpath("shrinks.safetensors"), raw, n);
            st = nn_st_open(tpath("shrinks.safetensors"));
            CHECK(st != NULL, "open before the cut: %s", nn_error());
            if (st) {
                int fd = open(tpath("shrinks.safetensors"), O_WRONLY | O_TRUNC);
                CHECK(fd >= 0, "truncate");
                if (fd >= 0) close(fd);
                float got[256];
                CHECK(nn_st_read_f32(st, "layer.kernel", got, 2, s) == -1 &&
                          strstr(nn_error(), "shrinks.safetensors") && strstr(nn_error(), "shorter"),
                      "file cut after open: %s", nn_error());
                nn_st_close(st);
            }
            write_file(tpath("cut2.safetensors"), raw, 30);
            st = nn_st_open(tpath("cut2.safetensors"));
            CHECK(!st && strstr(nn_error(), "cut2.safetensors") && strstr(nn_error(), "truncated"),
                  "truncated header: %s", nn_error());
            free(raw);
        }
    }
    /* still fine: empty header object, header padded with spaces, null metadata */
    nn_st *st = open_ok("emptyobj", "{}", NULL, 0);
    CHECK(st && nn_st_count(st) == 0 && nn_st_meta_count(st) == 0, "empty file");
    nn_st_close(st);
    st = open_ok("padded", "{\"__metadata__\":null,\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                           "\"data_offsets\":[0,16]}}      ", d, 16);
    CHECK(st && nn_st_count(st) == 1, "padded header");
    nn_st_close(st);
}

/* Many tensors: lookups are by binary search; checks sorting and find. */
static void test_many(void) {
    nn_st_writer *w = nn_st_writer_new();
    static float vals[300];
    char name[32];
    int64_t s[1] = {1};
    for (int i = 0; i < 300; i++) {
        vals[i] = (float)i;
        snprintf(name, sizeof name, "t%d", (i * 7919) % 300);
        CHECK(nn_st_writer_add_f32(w, name, &vals[i], 1, s) == 0, "%s", nn_error());
    }
    CHECK(nn_st_writer_save(w, tpath("many.safetensors")) == 0, "%s", nn_error());
    nn_st_writer_free(w);
    nn_st *st = nn_st_open(tpath("many.safetensors"));
    CHECK(st && nn_st_count(st) == 300, "many: %s", nn_error());
    int bad = 0;
    for (int i = 0; st && i < 300; i++) {
        float v = -1;
        snprintf(name, sizeof name, "t%d", (i * 7919) % 300);
        bad += nn_st_read_f32(st, name, &v, 1, s) != 0 || v != (float)i;
    }
    CHECK(bad == 0, "many: %d tensors wrong", bad);
    nn_st_close(st);
}

int main(void) {
    tu_tmpdir_make("st");
    test_roundtrip();
    test_half_types();
    test_bad_values();
    test_malformed();
    test_many();
    tu_tmpdir_remove();
    return test_summary("test_safetensors");
}
