/* test_mobilenetv2.c — MobileNetV2 against the independent numpy reference (real ImageNet weights
 * and random alpha-0.35 weights, folded and unfolded), gradients, save/load, bad weight files. */

#include "mobilenetv2.h"
#include "testutil.h"
#include <sys/wait.h>
#include <unistd.h>

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_src[1024], g_work[1024], g_py[512];
static int g_have_py;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int file_exists(const char *p) {
    struct stat s;
    return stat(p, &s) == 0;
}

static int run(const char *cmd) {
    int r = system(cmd);
    if (r != 0) fprintf(stderr, "command failed (%d): %s\n", r, cmd);
    return r;
}

static int write_floats(const char *path, const float *x, size_t n) {
    return nn_file_write_atomic(path, x, n * sizeof(float));
}

static float *read_floats(const char *path, size_t n) {
    uint8_t *d;
    size_t len;
    if (nn_file_read(path, &d, &len, n * sizeof(float) + 1) || len != n * sizeof(float)) {
        fprintf(stderr, "cannot read %zu floats from %s: %s\n", n, path, nn_error());
        return NULL;
    }
    return (float *)d;
}

/* Runs the converter on a TF-slim folder. */
static int convert(const char *folder, const char *out, const char *extra) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' '%s/weights/convert_mobilenetv2.py' -q '%s' -o '%s' %s", g_py,
             g_src, folder, out, extra ? extra : "");
    return run(cmd);
}

/* Runs the numpy reference; logits_out may be NULL. */
static int reference(const char *weights, const char *x, int n, int size, const char *out,
                     const char *head, const char *logits_out) {
    char cmd[8192];
    int k = snprintf(cmd, sizeof cmd,
                     "'%s' '%s/tests/ref_mobilenetv2.py' forward --weights '%s' --input '%s' "
                     "--n %d --size %d --out '%s'",
                     g_py, g_src, weights, x, n, size, out);
    if (head) snprintf(cmd + k, sizeof cmd - k, " --head '%s' --logits-out '%s'", head, logits_out);
    double t0 = now();
    int r = run(cmd);
    printf("numpy reference: %d images at %d in %.2f s\n", n, size, now() - t0);
    return r;
}

/* ---- architecture ---------------------------------------------------------- */
static void test_arch(void) {
    /* Keras' trainable counts (no top); C16 = block 16 output channels */
    static const struct { float a; size_t trainable; int feat, stem, c16; } T[] = {
        {0.35f, 396128, 1280, 16, 112}, {0.5f, 687680, 1280, 16, 160},
        {0.75f, 1355424, 1280, 24, 240}, {1.0f, 2223872, 1280, 32, 320},
        {1.3f, 3721792, 1664, 40, 416}, {1.4f, 4315776, 1792, 48, 448}};
    for (size_t i = 0; i < sizeof T / sizeof *T; i++) {
        nn_mnv2 *m = nn_mnv2_new(T[i].a, 96, 0);
        CHECK(m != NULL, "alpha %g: %s", (double)T[i].a, nn_error());
        if (!m) continue;
        CHECK(nn_mnv2_prepare_train(m, 1, 0, 1) == 0, "prepare_train: %s", nn_error());
        float *p, *g;
        size_t n = nn_mnv2_trainable(m, &p, &g);
        CHECK(n == T[i].trainable, "alpha %g: %zu trainable parameters, Keras has %zu",
              (double)T[i].a, n, T[i].trainable);
        CHECK(nn_mnv2_feature_channels(m) == T[i].feat, "alpha %g: %d features", (double)T[i].a,
              nn_mnv2_feature_channels(m));
        CHECK(nn_mnv2_feature_size(m) == 3 && nn_mnv2_input_size(m) == 96, "96 -> 3x3");
        /* the stem weight is the first trainable tensor: 3*3*3*C0 floats, then gamma = 1 */
        CHECK(p[27 * T[i].stem] == 1.f && p[27 * T[i].stem + T[i].stem - 1] == 1.f &&
                  p[27 * T[i].stem + T[i].stem] == 0.f,
              "alpha %g: stem has %d channels", (double)T[i].a, T[i].stem);
        /* trainable span shrinks to the suffix */
        CHECK(nn_mnv2_prepare_train(m, 1, 18, 0) == 0, "prepare_train 18");
        float *p18;
        size_t n18 = nn_mnv2_trainable(m, &p18, NULL);
        size_t c18 = (size_t)T[i].feat;
        CHECK(n18 == c18 * T[i].c16 + 2 * c18, "stage 18 span %zu", n18);
        CHECK(p18 + n18 == p + n, "suffix ends where the full span ends");
        CHECK(nn_mnv2_prepare_train(m, 1, 19, 0) == 0 && nn_mnv2_trainable(m, NULL, NULL) == 0,
              "train_from 19: nothing trainable");
        nn_mnv2_free(m);
    }
    nn_mnv2 *m = nn_mnv2_new(0.6f, 224, 0);
    CHECK(!m && strstr(nn_error(), "alpha"), "alpha 0.6 refused: %s", nn_error());
    m = nn_mnv2_new(1.0f, 200, 0);
    CHECK(!m && strstr(nn_error(), "200"), "size 200 refused: %s", nn_error());
    m = nn_mnv2_new(1.0f, 256, 0);
    CHECK(!m, "size 256 refused");
    m = nn_mnv2_new(1.0f, 160, 1);
    CHECK(m && nn_mnv2_feature_size(m) == 5, "160 -> 5x5");
    nn_mnv2_free(m);
}

/* Max relative error |a - ref| / max(|ref|, floor), floor = 1e-2 * max|ref|. */
static double feat_error(const char *what, const float *a, const float *ref, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    double e = tu_compare(what, a, ref, n, 1e-2 * mx, 1e-4);
    printf("%s: max relative error %.3g (floor %.3g)\n", what, e, 1e-2 * mx);
    return e;
}

static void compare_paths(nn_mnv2 *m, const float *x, int n, const float *ref, const char *tag) {
    int C = nn_mnv2_feature_channels(m);
    float *a = malloc(sizeof(float) * n * C), *b = malloc(sizeof(float) * n * C);
    char what[128];
    CHECK(nn_mnv2_prepare_infer(m, n) == 0, "prepare_infer: %s", nn_error());
    double t0 = now();
    nn_mnv2_infer(m, x, n, a, NULL, NULL);
    double t1 = now();
    snprintf(what, sizeof what, "%s folded (infer)", tag);
    double e1 = feat_error(what, a, ref, (size_t)n * C);
    CHECK(e1 <= 1e-4, "%s: %.3g > 1e-4", what, e1);
    CHECK(nn_mnv2_prepare_train(m, n, 0, 0) == 0, "prepare_train: %s", nn_error());
    nn_mnv2_train_forward(m, x, n, b);
    snprintf(what, sizeof what, "%s unfolded (train_forward, frozen BN)", tag);
    double e2 = feat_error(what, b, ref, (size_t)n * C);
    CHECK(e2 <= 1e-4, "%s: %.3g > 1e-4", what, e2);
    /* a suffix trainable, the prefix folded */
    CHECK(nn_mnv2_prepare_train(m, n, 9, 0) == 0, "prepare_train 9");
    nn_mnv2_train_forward(m, x, n, b);
    snprintf(what, sizeof what, "%s mixed (train_from 9)", tag);
    double e3 = feat_error(what, b, ref, (size_t)n * C);
    CHECK(e3 <= 1e-4, "%s: %.3g > 1e-4", what, e3);
    printf("%s: infer %.1f ms for %d images\n", tag, (t1 - t0) * 1e3, n);
    free(a);
    free(b);
}

/* ---- gradient check ------------------------------------------------------ */
/* The TF-slim .npy name of an engine tensor ("block3.dw.weight" ->
 * "expanded_conv_3_depthwise_depthwise_weights"). */
static void slim_name(const char *eng, char *out, size_t cap) {
    char unit[32], scope[64];
    const char *dot = strchr(eng, '.');
    snprintf(unit, sizeof unit, "%.*s", (int)(dot - eng), eng);
    const char *rest = dot + 1, *part = rest;
    int blk = -1;
    if (!strcmp(unit, "stem")) {
        snprintf(scope, sizeof scope, "Conv");
    } else if (!strcmp(unit, "last")) {
        snprintf(scope, sizeof scope, "Conv_1");
    } else {
        blk = atoi(unit + 5);
        const char *d2 = strchr(rest, '.');
        char op[16];
        snprintf(op, sizeof op, "%.*s", (int)(d2 - rest), rest);
        part = d2 + 1;
        const char *slim_op = !strcmp(op, "dw") ? "depthwise" : op;
        if (blk == 0)
            snprintf(scope, sizeof scope, "expanded_conv_%s", slim_op);
        else
            snprintf(scope, sizeof scope, "expanded_conv_%d_%s", blk, slim_op);
    }
    if (!strcmp(part, "weight"))
        snprintf(out, cap, "%s_%sweights", scope, strstr(scope, "depthwise") ? "depthwise_" : "");
    else
        snprintf(out, cap, "%s_BatchNorm_%s", scope, part + 3);
}

/* Backward of L = sum(pooled * r) against float64 central differences of the
 * numpy reference (float32 differences are too noisy through 19 stages). */
static void gradcheck(const char *st, const char *folder, const char *xf, const float *x, int n,
                      int S, int train_from, int bn_train, double tol) {
    nn_mnv2 *m = nn_mnv2_load_file(st, 0);   /* fresh running statistics */
    CHECK(m != NULL, "load: %s", nn_error());
    if (!m) return;
    int C = nn_mnv2_feature_channels(m);
    CHECK(nn_mnv2_prepare_train(m, n, train_from, bn_train) == 0, "prepare_train: %s", nn_error());
    float *pooled = malloc(sizeof(float) * n * C), *r = malloc(sizeof(float) * n * C);
    nn_rng rng;
    nn_rng_seed(&rng, 99 + train_from);
    for (int i = 0; i < n * C; i++) r[i] = nn_rng_normal(&rng);
    float *p, *g;
    size_t np = nn_mnv2_trainable(m, &p, &g);
    nn_mnv2_zero_grad(m);
    nn_mnv2_train_forward(m, x, n, pooled);
    nn_mnv2_train_backward(m, r, n);
    float *g1 = malloc(sizeof(float) * np);
    memcpy(g1, g, sizeof(float) * np);
    /* a second backward accumulates: gradients double */
    nn_mnv2_train_forward(m, x, n, pooled);
    nn_mnv2_train_backward(m, r, n);
    size_t bad_acc = 0;
    for (size_t i = 0; i < np; i++)
        if (fabsf(g[i] - 2 * g1[i]) > 1e-5f * (1 + fabsf(g1[i]))) bad_acc++;
    CHECK(bad_acc == 0, "backward accumulates into the gradients (%zu differ)", bad_acc);
    nn_mnv2_zero_grad(m);
    size_t nz = 0;
    for (size_t i = 0; i < np; i++) nz += g[i] != 0;
    CHECK(nz == 0, "zero_grad");
    memcpy(g, g1, sizeof(float) * np);

    /* coordinates: a weight, gamma and beta of several trainable convs */
    static const char *units[] = {"stem", "block0.dw", "block1.expand", "block3.dw",
                                  "block6.project", "block11.expand", "block13.dw",
                                  "block15.project", "block16.project", "last"};
    static const int unit_stage[] = {0, 1, 2, 4, 7, 12, 14, 16, 17, 18};
    static const char *parts[] = {"weight", "bn.gamma", "bn.beta"};
    char coords[1200], rfile[1200], fdfile[1200];
    snprintf(coords, sizeof coords, "%s/gc_coords.txt", g_work);
    snprintf(rfile, sizeof rfile, "%s/gc_r.f32", g_work);
    snprintf(fdfile, sizeof fdfile, "%s/gc_fd.f64", g_work);
    FILE *f = fopen(coords, "w");
    double an[64];
    int k = 0;
    for (int u = 0; u < 10; u++) {
        if (unit_stage[u] < train_from) continue;
        for (int q = 0; q < 3; q++) {
            if (q == 1 + u % 2) continue;   /* a weight and a gamma or a beta */
            char name[64], sn[96];
            snprintf(name, sizeof name, "%s.%s", units[u], parts[q]);
            size_t cnt;
            float *gr;
            float *d = nn_mnv2_tensor(m, name, &cnt, &gr);
            CHECK(d && gr, "%s: trainable tensor with a gradient", name);
            if (!d || !gr) continue;
            size_t idx = 0;   /* an element with a gradient well above noise */
            for (int t = 0; t < 50; t++) {
                idx = (size_t)nn_rng_u64(&rng) % cnt;
                if (fabsf(gr[idx]) > 1e-3f) break;
            }
            slim_name(name, sn, sizeof sn);
            fprintf(f, "%s %zu\n", sn, idx);
            an[k++] = gr[idx];
        }
    }
    fclose(f);
    write_floats(rfile, r, (size_t)n * C);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/tests/ref_mobilenetv2.py' gradcheck --weights '%s' --input '%s' --n %d "
             "--size %d --r '%s' --coords '%s' --batch-from %d --out '%s'",
             g_py, g_src, folder, xf, n, S, rfile, coords, bn_train ? train_from : 99, fdfile);
    double t0 = now();
    CHECK(run(cmd) == 0, "numpy gradcheck");
    uint8_t *fdb;
    size_t len;
    if (nn_file_read(fdfile, &fdb, &len, 1 << 20) == 0 && len == (size_t)k * sizeof(double)) {
        const double *fd = (const double *)fdb;
        double worst = 0, gmax = 0;
        for (int i = 0; i < k; i++) gmax = fmax(gmax, fabs(fd[i]));
        int bad = 0;
        for (int i = 0; i < k; i++) {
            double e = fabs(an[i] - fd[i]) / fmax(fabs(fd[i]), 1e-3 * gmax);
            worst = fmax(worst, e);
            if (e > tol) {
                bad++;
                fprintf(stderr, "  coordinate %d: backward %.8g, float64 difference %.8g (%.3g)\n",
                        i, an[i], fd[i], e);
            }
        }
        printf("gradcheck train_from %d bn_train %d: %d coordinates, worst relative error %.3g "
               "(tolerance %g; numpy %.1f s)\n", train_from, bn_train, k, worst, tol, now() - t0);
        CHECK(bad == 0, "%d of %d gradients off by more than %g", bad, k, tol);
        CHECK(k >= 4, "only %d coordinates", k);
        free(fdb);
    } else {
        CHECK(0, "no finite differences in %s", fdfile);
    }
    free(g1);
    free(pooled);
    free(r);
    nn_mnv2_free(m);
}

/* ---- crafted bad weight files ------------------------------------------- */
typedef struct {
    const char *name, *dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t bytes;
} raw_tensor;

/* A safetensors file written by hand, so that dtypes and shapes can be wrong. */
static int write_raw_st(const char *path, const raw_tensor *t, int n, const char *meta) {
    size_t cap = 1 << 20, len = 0, off = 0;
    char *h = malloc(cap);
    len += snprintf(h + len, cap - len, "{\"__metadata__\":{%s}", meta);
    for (int i = 0; i < n; i++) {
        len += snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name,
                        t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            len += snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        len += snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].bytes);
        off += t[i].bytes;
    }
    len += snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';
    size_t total = 8 + len + off;
    uint8_t *buf = malloc(total);
    uint64_t hl = len;
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, h, len);
    size_t p = 8 + len;
    for (int i = 0; i < n; i++) memcpy(buf + p, t[i].data, t[i].bytes), p += t[i].bytes;
    int r = nn_file_write_atomic(path, buf, total);
    free(buf);
    free(h);
    return r;
}

/* Rewrites `good` with one tensor changed by `mode` and checks that loading
 * fails with an error naming it. */
static void bad_file(const char *good, const char *victim, const char *mode, const char *expect) {
    nn_st *st = nn_st_open(good);
    CHECK(st != NULL, "open %s: %s", good, nn_error());
    if (!st) return;
    int n = nn_st_count(st);
    raw_tensor *t = calloc(n + 1, sizeof *t);
    float **bufs = calloc(n + 1, sizeof *bufs);
    double *dbl = NULL;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *dt;
        int nd;
        int64_t sh[NN_ST_MAX_DIMS];
        nn_st_info(st, i, &dt, &nd, sh);
        size_t cnt = 1;
        for (int d = 0; d < nd; d++) cnt *= (size_t)sh[d];
        bufs[i] = malloc(cnt * sizeof(float) + 4);
        nn_st_read_f32(st, nn_st_name(st, i), bufs[i], nd, sh);
        raw_tensor *r = &t[k];
        r->name = nn_st_name(st, i);
        r->dtype = "F32";
        r->ndim = nd;
        memcpy(r->shape, sh, sizeof(int64_t) * nd);
        r->data = bufs[i];
        r->bytes = cnt * sizeof(float);
        if (!strcmp(r->name, victim)) {
            if (!strcmp(mode, "missing")) continue;
            if (!strcmp(mode, "shape")) r->shape[nd - 1] -= 1, r->bytes -= sizeof(float) * (cnt / sh[nd - 1]);
            if (!strcmp(mode, "nan")) bufs[i][cnt / 2] = NAN;
            if (!strcmp(mode, "dtype")) {
                dbl = malloc(cnt * sizeof(double));
                for (size_t j = 0; j < cnt; j++) dbl[j] = bufs[i][j];
                r->dtype = "F64", r->data = dbl, r->bytes = cnt * sizeof(double);
            }
        }
        k++;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/bad-%s.safetensors", g_work, mode);
    const char *meta = "\"format\":\"nnmask\",\"arch\":\"mobilenetv2\",\"alpha\":\"0.35\","
                       "\"input_size\":\"96\"";
    CHECK(write_raw_st(path, t, k, meta) == 0, "write %s: %s", path, nn_error());
    nn_mnv2 *m = nn_mnv2_load_file(path, 0);
    CHECK(m == NULL, "%s %s: loaded anyway", mode, victim);
    CHECK(strstr(nn_error(), victim) && strstr(nn_error(), expect),
          "%s: error names the tensor and says '%s': %s", mode, expect, nn_error());
    printf("bad weights (%s): %s\n", mode, nn_error());
    nn_mnv2_free(m);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(t);
    free(dbl);
    nn_st_close(st);
}

static void test_bad_files(const char *good) {
    bad_file(good, "block7.expand.bn.var", "missing", "not found");
    bad_file(good, "block3.project.weight", "shape", "shape");
    bad_file(good, "block12.dw.weight", "dtype", "dtype");
    bad_file(good, "block5.dw.bn.gamma", "nan", "NaN");
    /* truncated file */
    uint8_t *d;
    size_t len;
    CHECK(nn_file_read(good, &d, &len, 64 << 20) == 0, "read %s", good);
    char path[1200];
    snprintf(path, sizeof path, "%s/bad-truncated.safetensors", g_work);
    nn_file_write_atomic(path, d, len * 2 / 3);
    free(d);
    nn_mnv2 *m = nn_mnv2_load_file(path, 0);
    CHECK(!m && strstr(nn_error(), "bad-truncated.safetensors"), "truncated: %s", nn_error());
    printf("bad weights (truncated): %s\n", nn_error());
    /* a head asked of a backbone-only file */
    m = nn_mnv2_load_file(good, 1);
    CHECK(!m && strstr(nn_error(), "logits.weight"), "no head: %s", nn_error());
    snprintf(path, sizeof path, "%s/does-not-exist.safetensors", g_work);
    m = nn_mnv2_load_file(path, 0);
    CHECK(!m && strstr(nn_error(), "does-not-exist"), "missing file: %s", nn_error());
}

/* ---- random weights: alpha 0.35, input 96 --------------------------------- */
static void test_random(void) {
    char folder[1200], st[1200], xf[1200], rf[1200], saved[1200];
    snprintf(folder, sizeof folder, "%s/random_0.35_96", g_work);
    snprintf(st, sizeof st, "%s/random_0.35_96.safetensors", g_work);
    snprintf(xf, sizeof xf, "%s/random_x.f32", g_work);
    snprintf(rf, sizeof rf, "%s/random_ref.f32", g_work);
    snprintf(saved, sizeof saved, "%s/random_saved.safetensors", g_work);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/ref_mobilenetv2.py' random '%s' --alpha 0.35 --seed 7",
             g_py, g_src, folder);
    CHECK(run(cmd) == 0, "random weights");
    CHECK(convert(folder, st, "--alpha 0.35 --size 96") == 0, "convert random weights");
    const int n = 2, S = 96;
    float *x = malloc(sizeof(float) * n * S * S * 3);
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    for (int i = 0; i < n * S * S * 3; i++) x[i] = nn_rng_range(&rng, -1.f, 1.f);
    CHECK(write_floats(xf, x, (size_t)n * S * S * 3) == 0, "write input");
    CHECK(reference(folder, xf, n, S, rf, NULL, NULL) == 0, "reference");
    nn_mnv2 *m = nn_mnv2_load_file(st, 0);
    CHECK(m != NULL, "load %s: %s", st, nn_error());
    float *ref = read_floats(rf, (size_t)n * 1280);
    if (!m || !ref) goto out;
    CHECK(nn_mnv2_alpha(m) == 0.35f && nn_mnv2_input_size(m) == 96, "metadata alpha/size");
    compare_paths(m, x, n, ref, "alpha 0.35 @96 random");

    /* train_from 19 (nothing trainable) is the folded network */
    {
        float a[2 * 1280], b[2 * 1280], fm[2 * 3 * 3 * 1280];
        nn_mnv2_prepare_infer(m, n);
        nn_mnv2_infer(m, x, n, a, fm, NULL);
        nn_mnv2_prepare_train(m, n, 19, 0);
        nn_mnv2_train_forward(m, x, n, b);
        CHECK(!memcmp(a, b, sizeof a), "train_from 19 == infer");
        double s = 0, e = 0;   /* pooled is the mean of the feature map */
        for (int c = 0; c < 1280; c++) {
            s = 0;
            for (int p = 0; p < 9; p++) s += fm[(9 + p) * 1280 + c];
            e = fmax(e, fabs(s / 9 - a[1280 + c]));
        }
        CHECK(e < 1e-5, "fmap averages to pooled (%.3g)", e);
    }

    /* save -> load round trip */
    {
        nn_st_writer *w = nn_st_writer_new();
        CHECK(nn_mnv2_save(m, w, "") == 0 && nn_st_writer_save(w, saved) == 0, "save: %s",
              nn_error());
        nn_st_writer_free(w);
        nn_mnv2 *m2 = nn_mnv2_load_file(saved, 0);
        CHECK(m2 != NULL, "reload: %s", nn_error());
        if (m2) {
            float a[2 * 1280], b[2 * 1280];
            nn_mnv2_prepare_infer(m, n);
            nn_mnv2_prepare_infer(m2, n);
            nn_mnv2_infer(m, x, n, a, NULL, NULL);
            nn_mnv2_infer(m2, x, n, b, NULL, NULL);
            CHECK(!memcmp(a, b, sizeof a), "saved model gives identical features");
            nn_mnv2_free(m2);
        }
    }

    /* released for inference: the same features from the folded copy alone,
     * 9 MB (here the alpha-0.35 parameters) less, and a training call exits */
    {
        nn_mnv2 *m3 = nn_mnv2_load_file(st, 0);
        CHECK(m3 != NULL, "load: %s", nn_error());
        if (m3) {
            float a[2 * 1280], b[2 * 1280];
            nn_mnv2_prepare_infer(m3, n);
            nn_mnv2_infer(m3, x, n, a, NULL, NULL);
            size_t before = nn_mnv2_memory_bytes(m3);
            size_t np = 0;
            nn_mnv2_tensor(m3, "last.weight", &np, NULL);
            nn_mnv2_release_params(m3);
            nn_mnv2_release_params(m3); /* twice: no-op */
            size_t after = nn_mnv2_memory_bytes(m3);
            CHECK(np > 0 && before > after && before - after >= 4 * np,
                  "release frees the parameters: %zu -> %zu bytes", before, after);
            nn_mnv2_prepare_infer(m3, n);
            nn_mnv2_infer(m3, x, n, b, NULL, NULL);
            CHECK(!memcmp(a, b, sizeof a), "released model gives identical features");
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                freopen("/dev/null", "w", stderr);
                nn_mnv2_prepare_train(m3, n, 0, 0);
                _exit(0);
            }
            int status = 0;
            waitpid(pid, &status, 0);
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2, "training a released model exits 2 (status %d)",
                  status);
            nn_mnv2_free(m3);
        }
    }

    /* gradients: everything trainable with batch statistics, and a frozen-BN suffix */
    /* Frozen BN: every layer's backward (stem, depthwise, 1x1, BN, ReLU6,
     * residual) against float64 differences, tightly. */
    gradcheck(st, folder, xf, x, n, S, 0, 0, 1e-3);
    /* Batch statistics over 2 images of 3x3..6x6 maps make the network itself
     * ill-conditioned: a 1e-7 change of the input moves the float64 output by
     * ~1e-5 (from stage 12) to ~2e-4 (from stage 0), so float32 gradients of
     * the early stages can only match to several percent. */
    gradcheck(st, folder, xf, x, n, S, 17, 1, 2e-3);
    gradcheck(st, folder, xf, x, n, S, 12, 1, 3e-2);
    gradcheck(st, folder, xf, x, n, S, 0, 1, 0.15);

    /* batch-statistics training moves the running statistics (momentum 0.999) */
    {
        nn_mnv2_prepare_infer(m, n);
        float a[2 * 1280], b[2 * 1280];
        nn_mnv2_infer(m, x, n, a, NULL, NULL);
        nn_mnv2_prepare_train(m, n, 0, 1);
        nn_mnv2_train_forward(m, x, n, b);
        nn_mnv2_prepare_infer(m, n);   /* refolds the changed statistics */
        nn_mnv2_infer(m, x, n, b, NULL, NULL);
        CHECK(memcmp(a, b, sizeof a) != 0, "running statistics updated by bn_train");
    }
    test_bad_files(st);
out:
    nn_mnv2_free(m);
    free(ref);
    free(x);
}

/* ---- the real ImageNet weights ------------------------------------------- */
static void test_real(const char *shared) {
    char wdir[1200], head[1300], st[1200], xf[1200], rf[1200], lf[1200];
    snprintf(wdir, sizeof wdir, "%s/weights/mobilenet_v2_1.0_224", shared);
    snprintf(head, sizeof head, "%s/imagenet_head", wdir);
    snprintf(st, sizeof st, "%s/mobilenet_v2_1.0_224.safetensors", g_work);
    snprintf(xf, sizeof xf, "%s/real_x.f32", g_work);
    snprintf(rf, sizeof rf, "%s/real_ref.f32", g_work);
    snprintf(lf, sizeof lf, "%s/real_ref_logits.f32", g_work);
    char extra[1400];
    snprintf(extra, sizeof extra, "--imagenet-head '%s'", head);
    double t0 = now();
    CHECK(convert(wdir, st, extra) == 0, "convert %s", wdir);
    printf("converted ../shared weights in %.2f s\n", now() - t0);
    static const char *imgs[] = {"bird.bmp", "cat.bmp"};
    const int n = 2, S = 224;
    float *x = malloc(sizeof(float) * n * S * S * 3);
    for (int i = 0; i < n; i++) {
        char p[1300];
        snprintf(p, sizeof p, "%s/data/imagenet/%s", shared, imgs[i]);
        nn_image im;
        CHECK(nn_image_load(&im, p) == 0, "load %s: %s", p, nn_error());
        CHECK(nn_mnv2_preprocess_center(&im, S, x + (size_t)i * S * S * 3) == 0, "preprocess");
        nn_image_free(&im);
    }
    write_floats(xf, x, (size_t)n * S * S * 3);
    CHECK(reference(wdir, xf, n, S, rf, head, lf) == 0, "reference");
    nn_mnv2 *m = nn_mnv2_load_file(st, 1);
    CHECK(m != NULL, "load: %s", nn_error());
    float *ref = read_floats(rf, (size_t)n * 1280), *rl = read_floats(lf, (size_t)n * 1001);
    if (m && ref && rl) {
        compare_paths(m, x, n, ref, "alpha 1.0 @224 ImageNet");
        float *lg = malloc(sizeof(float) * n * 1001);
        nn_mnv2_prepare_infer(m, 1);
        for (int i = 0; i < n; i++)
            nn_mnv2_infer(m, x + (size_t)i * S * S * 3, 1, NULL, NULL, lg + (size_t)i * 1001);
        double e = feat_error("ImageNet logits (batch 1 each)", lg, rl, (size_t)n * 1001);
        CHECK(e <= 1e-4, "logits error %.3g", e);
        static const int want[] = {20, 286};  /* chickadee, Egyptian cat */
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < 1001; k++)
                if (lg[i * 1001 + k] > lg[i * 1001 + best]) best = k;
            CHECK(best == want[i], "%s: top-1 class %d, want %d", imgs[i], best, want[i]);
        }
        printf("model memory (params+folded+act+scratch, batch 1): %.1f MB\n",
               nn_mnv2_memory_bytes(m) / 1048576.0);
        free(lg);
    }
    nn_mnv2_free(m);
    free(ref);
    free(rl);
    free(x);
}

int main(void) {
    const char *src = getenv("NNMASK_SRC"), *build = getenv("NNMASK_BUILD");
    const char *py = getenv("NNMASK_PYTHON");
    snprintf(g_src, sizeof g_src, "%s", src ? src : ".");
    snprintf(g_work, sizeof g_work, "%s/test-mobilenetv2", build ? build : ".");
    snprintf(g_py, sizeof g_py, "%s", py ? py : "/usr/bin/python3");
    nn_threads_set(2);
    if (nn_mkdir_p(g_work)) {
        fprintf(stderr, "%s\n", nn_error());
        return 1;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' 2>/dev/null", g_py);
    g_have_py = system(cmd) == 0;
    test_arch();
    if (!g_have_py) {
        printf("test_mobilenetv2: %s with numpy not found: reference checks skipped\n", g_py);
        return test_summary("test_mobilenetv2");
    }
    test_random();
    char wdir[1200];
    snprintf(wdir, sizeof wdir, "%s/weights/mobilenet_v2_1.0_224", tu_shared());
    if (file_exists(wdir))
        test_real(tu_shared());
    else
        printf("test_mobilenetv2: %s absent: ImageNet-weight checks skipped\n", wdir);
    return test_summary("test_mobilenetv2");
}
