/* mobilenetv2.c — the MobileNetV2 backbone of mobilenetv2.h: architecture and Keras channel
 * rounding, parameter/gradient/activation arenas, weight I/O, folded inference, unfolded training. */

#include "mobilenetv2.h"
#include "irb_fused.h"
#include "bn_fused.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keras' MobileNetV2 BatchNormalization momentum (running = m*running + (1-m)*batch). */
#define MNV2_BN_MOMENTUM 0.999f
#define MNV2_MAX_UNITS 3
#define MNV2_HEAD_CLASSES 1001

enum { U_CONV, U_DW };

/* One conv (or depthwise conv) followed by batch norm and an optional ReLU6. */
typedef struct {
    char name[24];            /* "stem", "block3.expand", "last" */
    int kind, cin, cout;      /* depthwise: cin == cout */
    nn_act act;               /* NN_ACT_RELU6, or NN_ACT_NONE for the linear projection */
    nn_conv_geom g;
    size_t wn;                /* weight floats */
    int wdims;                /* 4 (conv HWIO) or 3 (depthwise HWC) */
    size_t w_off, gamma_off, beta_off, mean_off, var_off; /* float offsets in params */
    float *w, *gamma, *beta, *mean, *var;                 /* views into params */
    float *gw, *ggamma, *gbeta; /* gradients (trainable stages only) */
    float *pre, *out;         /* training: conv output (BN input), unit output */
    float *bmean, *brstd;     /* training: batch statistics saved for backward */
    float *fw, *fb;           /* BN folded into the conv (cached, see fold_all) */
} mnv2_unit;

typedef struct {
    int nu, residual;
    int in_hw, in_c, out_hw, out_c;   /* per-sample geometry */
    mnv2_unit u[MNV2_MAX_UNITS];
    float *sum;               /* training: project + input (residual stages) */
} mnv2_stage;

struct nn_mnv2 {
    float alpha;
    double alpha_d;           /* the exact table value, for channel rounding */
    int size, with_logits, feat_c, feat_hw;
    float eps;
    mnv2_stage st[NN_MNV2_STAGES];
    /* parameters: [w, gamma, beta per unit in stage order][mean, var per unit][logits] */
    nn_arena params;
    float *pbase;
    size_t stage_off[NN_MNV2_STAGES + 1]; /* float offset of each stage's first parameter */
    size_t n_stats, n_logits;
    float *logits_w, *logits_b;
    /* inference */
    nn_arena act;
    int infer_batch;
    float *ibuf[4];           /* A, B (block in/out), E (expanded), D (depthwise out) */
    float *ipooled;
    /* training */
    nn_arena tact, grads;
    int train_batch, train_from, bn_train;
    float *tbuf[4];           /* frozen-prefix buffers, like ibuf */
    float *tin;               /* saved input of stage train_from */
    float *tpooled;
    float *g[3];              /* rotating gradient buffers */
    float *gbase;
    /* one scratch: im2col (forward and backward) */
    nn_arena scratch;
    size_t scratch_floats;
    float *col;
    /* folded weights of every unit, refolded when the parameters may have
     * changed (load, training calls); the fused inverted-residual blocks */
    nn_arena fold;
    int fold_dirty;
    int infer_only;           /* nn_mnv2_release_params: the folded copy is all there is */
    nn_irb irb[NN_MNV2_STAGES];
    nn_arena irb_arena;
    float *irb_scr;
    int irb_threads;
};

enum { BA, BB, BE, BD };

static const double mnv2_alphas[] = {0.35, 0.5, 0.75, 1.0, 1.3, 1.4};
/* expansion t, output channels c, stride s of inverted-residual blocks 0..16 */
static const int mnv2_blocks[17][3] = {
    {1, 16, 1},  {6, 24, 2},  {6, 24, 1},  {6, 32, 2},  {6, 32, 1},  {6, 32, 1},
    {6, 64, 2},  {6, 64, 1},  {6, 64, 1},  {6, 64, 1},  {6, 96, 1},  {6, 96, 1},
    {6, 96, 1},  {6, 160, 2}, {6, 160, 1}, {6, 160, 1}, {6, 320, 1}};

/* Keras' _make_divisible(v, 8): nearest multiple of 8, never more than 10% down. */
static int make_divisible(double v) {
    int nv = (int)(v + 4.0) / 8 * 8;
    if (nv < 8) nv = 8;
    if (nv < 0.9 * v) nv += 8;
    return nv;
}

static nn_tensor view(float *p, int n, int hw, int c) { return nn_tensor_make(p, n, hw, hw, c); }
static size_t unit_out_floats(const mnv2_unit *u) {
    return (size_t)u->g.out_h * u->g.out_w * u->cout;
}

static void unit_init(mnv2_unit *u, const char *name, int kind, int k, int stride, int in_hw,
                      int cin, int cout, nn_act act) {
    snprintf(u->name, sizeof u->name, "%s", name);
    u->kind = kind;
    u->cin = cin;
    u->cout = cout;
    u->act = act;
    nn_conv_geom_init(&u->g, in_hw, in_hw, k, k, stride, 1, NN_PAD_SAME, 0);
    u->wdims = kind == U_DW ? 3 : 4;
    u->wn = (size_t)k * k * (kind == U_DW ? 1 : cin) * cout;
}

/* ---- construction --------------------------------------------------------- */

nn_mnv2 *nn_mnv2_new(float alpha, int input_size, int with_logits) {
    double ad = 0;
    for (size_t i = 0; i < sizeof mnv2_alphas / sizeof *mnv2_alphas; i++)
        if (fabs(alpha - mnv2_alphas[i]) < 1e-4) ad = mnv2_alphas[i];
    if (ad == 0) {
        nn_set_error("mobilenetv2: alpha %g not supported (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)",
                     (double)alpha);
        return NULL;
    }
    if (input_size < 96 || input_size > 224 || input_size % 32) {
        nn_set_error("mobilenetv2: input size %d not supported (a multiple of 32 in 96..224)",
                     input_size);
        return NULL;
    }
    nn_mnv2 *m = calloc(1, sizeof *m);
    if (!m) {
        nn_set_error("mobilenetv2: out of memory");
        return NULL;
    }
    m->alpha = (float)ad;
    m->alpha_d = ad;
    m->size = input_size;
    m->with_logits = with_logits != 0;
    m->eps = 1e-3f;
    m->fold_dirty = 1;
    m->train_from = NN_MNV2_STAGES;

    /* stage 0: stem */
    int hw = input_size, c = make_divisible(32 * ad);
    mnv2_stage *s = &m->st[0];
    s->nu = 1;
    s->in_hw = hw, s->in_c = 3;
    unit_init(&s->u[0], "stem", U_CONV, 3, 2, hw, 3, c, NN_ACT_RELU6);
    hw = s->u[0].g.out_h;
    s->out_hw = hw, s->out_c = c;
    /* stages 1..17: inverted-residual blocks 0..16 */
    for (int b = 0; b < 17; b++) {
        int t = mnv2_blocks[b][0], stride = mnv2_blocks[b][2];
        int cout = make_divisible((double)(int)(mnv2_blocks[b][1] * ad));
        int cexp = c * t;
        char nm[24];
        s = &m->st[1 + b];
        s->in_hw = hw, s->in_c = c;
        s->nu = 0;
        if (b > 0) {
            snprintf(nm, sizeof nm, "block%d.expand", b);
            unit_init(&s->u[s->nu++], nm, U_CONV, 1, 1, hw, c, cexp, NN_ACT_RELU6);
        }
        snprintf(nm, sizeof nm, "block%d.dw", b);
        unit_init(&s->u[s->nu++], nm, U_DW, 3, stride, hw, cexp, cexp, NN_ACT_RELU6);
        int ohw = s->u[s->nu - 1].g.out_h;
        snprintf(nm, sizeof nm, "block%d.project", b);
        unit_init(&s->u[s->nu++], nm, U_CONV, 1, 1, ohw, cexp, cout, NN_ACT_NONE);
        s->residual = stride == 1 && c == cout;
        hw = ohw, c = cout;
        s->out_hw = hw, s->out_c = c;
    }
    /* stage 18: last 1x1 conv */
    int clast = ad > 1.0 ? make_divisible(1280 * ad) : 1280;
    s = &m->st[18];
    s->nu = 1;
    s->in_hw = hw, s->in_c = c;
    unit_init(&s->u[0], "last", U_CONV, 1, 1, hw, c, clast, NN_ACT_RELU6);
    s->out_hw = hw, s->out_c = clast;
    m->feat_c = clast;
    m->feat_hw = hw;

    /* one allocation: trainable tensors in stage order, then BN statistics, then the head */
    size_t off = 0, stats = 0;
    for (int i = 0; i < NN_MNV2_STAGES; i++) {
        m->stage_off[i] = off;
        for (int k = 0; k < m->st[i].nu; k++) {
            mnv2_unit *u = &m->st[i].u[k];
            u->w_off = off, off += u->wn;
            u->gamma_off = off, off += u->cout;
            u->beta_off = off, off += u->cout;
            stats += 2 * (size_t)u->cout;
        }
    }
    m->stage_off[NN_MNV2_STAGES] = off;
    m->n_stats = stats;
    m->n_logits = m->with_logits ? (size_t)clast * MNV2_HEAD_CLASSES + MNV2_HEAD_CLASSES : 0;
    size_t total = off + stats + m->n_logits;
    if (nn_arena_init(&m->params, "mobilenetv2 parameters", total * sizeof(float) + 64) != 0) {
        free(m);
        nn_set_error("mobilenetv2: out of memory for %zu parameters", total);
        return NULL;
    }
    m->pbase = nn_arena_floats(&m->params, total);
    size_t soff = off;
    for (int i = 0; i < NN_MNV2_STAGES; i++)
        for (int k = 0; k < m->st[i].nu; k++) {
            mnv2_unit *u = &m->st[i].u[k];
            u->mean_off = soff, soff += u->cout;
            u->var_off = soff, soff += u->cout;
            u->w = m->pbase + u->w_off;
            u->gamma = m->pbase + u->gamma_off;
            u->beta = m->pbase + u->beta_off;
            u->mean = m->pbase + u->mean_off;
            u->var = m->pbase + u->var_off;
            /* identity BN until weights are loaded */
            for (int j = 0; j < u->cout; j++) u->gamma[j] = 1.f, u->var[j] = 1.f;
        }
    if (m->with_logits) {
        m->logits_w = m->pbase + soff;
        m->logits_b = m->logits_w + (size_t)clast * MNV2_HEAD_CLASSES;
    }
    return m;
}

void nn_mnv2_free(nn_mnv2 *m) {
    if (!m) return;
    nn_arena_free(&m->params);
    nn_arena_free(&m->act);
    nn_arena_free(&m->tact);
    nn_arena_free(&m->grads);
    nn_arena_free(&m->scratch);
    nn_arena_free(&m->fold);
    nn_arena_free(&m->irb_arena);
    free(m);
}

int nn_mnv2_feature_channels(const nn_mnv2 *m) { return m->feat_c; }
int nn_mnv2_feature_size(const nn_mnv2 *m) { return m->feat_hw; }
int nn_mnv2_input_size(const nn_mnv2 *m) { return m->size; }
float nn_mnv2_alpha(const nn_mnv2 *m) { return m->alpha; }

size_t nn_mnv2_memory_bytes(const nn_mnv2 *m) {
    return m->params.size + m->act.size + m->tact.size + m->grads.size + m->scratch.size +
           m->fold.size + m->irb_arena.size;
}

/* Calls that need the unfolded parameters refuse a released model. */
static void need_params(const nn_mnv2 *m, const char *fn) {
    if (m->infer_only)
        nn_fatal("%s: this MobileNetV2 keeps only its folded inference weights "
                 "(nn_mnv2_release_params)", fn);
}

/* ---- weight I/O ------------------------------------------------------------ */

static void unit_shape(const mnv2_unit *u, int64_t *shape) {
    shape[0] = u->g.kh, shape[1] = u->g.kw;
    if (u->kind == U_DW) {
        shape[2] = u->cout;
    } else {
        shape[2] = u->cin, shape[3] = u->cout;
    }
}

static int read_tensor(const nn_st *st, const char *prefix, const char *unit, const char *part,
                       float *dst, int ndim, const int64_t *shape) {
    char name[128];
    snprintf(name, sizeof name, "%s%s%s", prefix, unit, part);
    return nn_st_read_f32(st, name, dst, ndim, shape);
}

int nn_mnv2_load(nn_mnv2 *m, const nn_st *st, const char *prefix) {
    need_params(m, "nn_mnv2_load");
    if (!prefix) prefix = "";
    m->fold_dirty = 1;
    for (int i = 0; i < NN_MNV2_STAGES; i++)
        for (int k = 0; k < m->st[i].nu; k++) {
            mnv2_unit *u = &m->st[i].u[k];
            int64_t ws[4], cs[1] = {u->cout};
            unit_shape(u, ws);
            if (read_tensor(st, prefix, u->name, ".weight", u->w, u->wdims, ws) ||
                read_tensor(st, prefix, u->name, ".bn.gamma", u->gamma, 1, cs) ||
                read_tensor(st, prefix, u->name, ".bn.beta", u->beta, 1, cs) ||
                read_tensor(st, prefix, u->name, ".bn.mean", u->mean, 1, cs) ||
                read_tensor(st, prefix, u->name, ".bn.var", u->var, 1, cs))
                return -1;
            for (int j = 0; j < u->cout; j++)
                if (u->var[j] < 0)
                    return nn_set_error("%s%s.bn.var: negative variance %g at index %d", prefix,
                                        u->name, (double)u->var[j], j);
        }
    if (m->with_logits) {
        int64_t ws[2] = {m->feat_c, MNV2_HEAD_CLASSES}, bs[1] = {MNV2_HEAD_CLASSES};
        if (read_tensor(st, prefix, "logits", ".weight", m->logits_w, 2, ws) ||
            read_tensor(st, prefix, "logits", ".bias", m->logits_b, 1, bs))
            return -1;
    }
    return 0;
}

static int meta_number(const nn_st *st, const char *path, const char *key, double *v) {
    const char *s = nn_st_meta(st, key);
    if (!s) return nn_set_error("%s: metadata '%s' missing (not an nnmask MobileNetV2 file?)", path, key);
    char *end;
    *v = strtod(s, &end);
    if (end == s || *end) return nn_set_error("%s: metadata '%s' = '%s' is not a number", path, key, s);
    return 0;
}

nn_mnv2 *nn_mnv2_load_file(const char *path, int with_logits) {
    nn_st *st = nn_st_open(path);
    if (!st) return NULL;
    const char *arch = nn_st_meta(st, "arch");
    double alpha, size, eps = 1e-3;
    nn_mnv2 *m = NULL;
    if (arch && strcmp(arch, "mobilenetv2") != 0) {
        nn_set_error("%s: arch is '%s', not mobilenetv2", path, arch);
        goto done;
    }
    if (meta_number(st, path, "alpha", &alpha) || meta_number(st, path, "input_size", &size))
        goto done;
    if (nn_st_meta(st, "bn_eps") && meta_number(st, path, "bn_eps", &eps)) goto done;
    if (!(eps > 0 && eps < 1)) {
        nn_set_error("%s: metadata bn_eps %g out of range", path, eps);
        goto done;
    }
    if (with_logits && nn_st_find(st, "logits.weight") < 0) {
        nn_set_error("%s: tensor 'logits.weight' not found (convert with --imagenet-head, or "
                     "from a Keras file with top)", path);
        goto done;
    }
    m = nn_mnv2_new((float)alpha, (int)size, with_logits);
    if (!m) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nn_error());
        nn_set_error("%s: %s", path, msg);
        goto done;
    }
    m->eps = (float)eps;
    if (nn_mnv2_load(m, st, "") != 0) {
        nn_mnv2_free(m);
        m = NULL;
    }
done:
    nn_st_close(st);
    return m;
}

int nn_mnv2_save(const nn_mnv2 *m, nn_st_writer *w, const char *prefix) {
    need_params(m, "nn_mnv2_save");
    if (!prefix) prefix = "";
    char name[128], val[32];
    static const char *parts[] = {".bn.gamma", ".bn.beta", ".bn.mean", ".bn.var"};
    for (int i = 0; i < NN_MNV2_STAGES; i++)
        for (int k = 0; k < m->st[i].nu; k++) {
            const mnv2_unit *u = &m->st[i].u[k];
            int64_t ws[4], cs[1] = {u->cout};
            unit_shape(u, ws);
            snprintf(name, sizeof name, "%s%s.weight", prefix, u->name);
            if (nn_st_writer_add_f32(w, name, u->w, u->wdims, ws)) return -1;
            const float *bn[4] = {u->gamma, u->beta, u->mean, u->var};
            for (int p = 0; p < 4; p++) {
                snprintf(name, sizeof name, "%s%s%s", prefix, u->name, parts[p]);
                if (nn_st_writer_add_f32(w, name, bn[p], 1, cs)) return -1;
            }
        }
    if (m->with_logits) {
        int64_t ws[2] = {m->feat_c, MNV2_HEAD_CLASSES}, bs[1] = {MNV2_HEAD_CLASSES};
        snprintf(name, sizeof name, "%slogits.weight", prefix);
        if (nn_st_writer_add_f32(w, name, m->logits_w, 2, ws)) return -1;
        snprintf(name, sizeof name, "%slogits.bias", prefix);
        if (nn_st_writer_add_f32(w, name, m->logits_b, 1, bs)) return -1;
    }
    /* metadata keys carry the prefix too ("backbone.alpha" inside a classifier) */
    struct { const char *k; const char *v; } meta[6];
    char a[32], sz[16], eps[32];
    snprintf(a, sizeof a, "%g", (double)m->alpha);
    if (!strchr(a, '.')) strcat(a, ".0");
    snprintf(sz, sizeof sz, "%d", m->size);
    snprintf(eps, sizeof eps, "%g", (double)m->eps);
    meta[0].k = "format", meta[0].v = "nnmask";
    meta[1].k = "arch", meta[1].v = "mobilenetv2";
    meta[2].k = "alpha", meta[2].v = a;
    meta[3].k = "input_size", meta[3].v = sz;
    meta[4].k = "preprocess", meta[4].v = "rgb*(1/127.5)-1";
    meta[5].k = "bn_eps", meta[5].v = eps;
    for (int i = 0; i < 6; i++) {
        if (i == 0 && *prefix) continue;   /* the file's own format is the caller's */
        snprintf(val, sizeof val, "%s", meta[i].v);
        snprintf(name, sizeof name, "%s%s", prefix, meta[i].k);
        if (nn_st_writer_meta(w, name, val)) return -1;
    }
    return 0;
}

/* ---- folding ----------------------------------------------------------------- */
/* The folded pass runs on a cached copy of the weights with BN folded in
 * (one more copy of the network, 9 MB at alpha 1): folding on every pass
 * cost ~25% of a batch-1 forward. The copy is refreshed whenever the
 * parameters may have changed since: after nn_mnv2_load, and after any
 * training call (train_forward, trainable, zero_grad), since the optimizer
 * writes the parameters in between. */
static void fold_all(nn_mnv2 *m) {
    if (m->infer_only) return; /* folded for good by nn_mnv2_release_params */
    if (!m->fold.base) {
        size_t total = 0;
        for (int i = 0; i < NN_MNV2_STAGES; i++)
            for (int k = 0; k < m->st[i].nu; k++)
                total += m->st[i].u[k].wn + (size_t)m->st[i].u[k].cout + 32;
        if (nn_arena_init(&m->fold, "mobilenetv2 folded weights", total * sizeof(float) + 64) != 0)
            nn_fatal("mobilenetv2: out of memory for the folded weights");
        for (int i = 0; i < NN_MNV2_STAGES; i++)
            for (int k = 0; k < m->st[i].nu; k++) {
                mnv2_unit *u = &m->st[i].u[k];
                u->fw = nn_arena_alloc(&m->fold, u->wn * sizeof(float));
                u->fb = nn_arena_alloc(&m->fold, (size_t)u->cout * sizeof(float));
            }
    }
    for (int i = 0; i < NN_MNV2_STAGES; i++) {
        mnv2_stage *s = &m->st[i];
        for (int k = 0; k < s->nu; k++) {
            mnv2_unit *u = &s->u[k];
            memcpy(u->fw, u->w, u->wn * sizeof(float));
            memset(u->fb, 0, (size_t)u->cout * sizeof(float));
            nn_batchnorm_fold(u->fw, u->fb, u->wn / (size_t)u->cout, u->cout, u->gamma, u->beta,
                              u->mean, u->var, m->eps);
        }
        if (s->nu < 2) continue;
        /* inverted residual: [expand] -> depthwise -> project (+ input) */
        const mnv2_unit *e = s->nu == 3 ? &s->u[0] : NULL, *d = &s->u[s->nu - 2],
                        *pj = &s->u[s->nu - 1];
        m->irb[i] = (nn_irb){.cin = s->in_c, .ce = d->cout, .cout = pj->cout,
                             .we = e ? e->fw : NULL, .be = e ? e->fb : NULL, .wd = d->fw,
                             .bd = d->fb, .wp = pj->fw, .bp = pj->fb, .residual = s->residual,
                             .g = d->g};
    }
    m->fold_dirty = 0;
}

void nn_mnv2_release_params(nn_mnv2 *m) {
    if (m->infer_only || m->with_logits) return;
    fold_all(m);
    for (int i = 0; i < NN_MNV2_STAGES; i++)
        for (int k = 0; k < m->st[i].nu; k++) {
            mnv2_unit *u = &m->st[i].u[k];
            u->w = u->gamma = u->beta = u->mean = u->var = NULL;
        }
    m->pbase = NULL;
    nn_arena_free(&m->params);
    nn_arena_free(&m->tact);
    nn_arena_free(&m->grads);
    m->infer_only = 1;
    m->fold_dirty = 0;
}

/* The fused blocks' scratch for the current thread count. */
static void ensure_irb(nn_mnv2 *m) {
    int nt = nn_threads_get();
    if (m->irb_arena.base && nt <= m->irb_threads) return;
    size_t need = 0;
    for (int i = 0; i < NN_MNV2_STAGES; i++)
        if (m->st[i].nu >= 2) {
            size_t f = nn__irb_scratch_floats(&m->irb[i], nt);
            if (f > need) need = f;
        }
    nn_arena_free(&m->irb_arena);
    if (nn_arena_init(&m->irb_arena, "mobilenetv2 block scratch", need * sizeof(float) + 64) != 0)
        nn_fatal("mobilenetv2: out of memory for %zu block scratch floats", need);
    m->irb_scr = nn_arena_alloc(&m->irb_arena, need * sizeof(float));
    m->irb_threads = nt;
}

/* ---- buffer sizing ------------------------------------------------------------ */

/* Per-sample floats of the folded-pass buffers over stages [from, to): the
 * stage outputs alternate A, B, A, ... (as run_folded writes them), the last
 * conv writes E, expand outputs E, depthwise outputs D. */
static void folded_sizes(const nn_mnv2 *m, int from, int to, size_t cap[4]) {
    cap[BA] = cap[BB] = cap[BE] = cap[BD] = 0;
    int ab = BA;
    for (int i = from; i < to; i++) {
        const mnv2_stage *s = &m->st[i];
        size_t out = (size_t)s->out_hw * s->out_hw * s->out_c;
        int dst = i == 18 ? BE : ab;
        if (out > cap[dst]) cap[dst] = out;
        if (i != 18) ab = ab == BA ? BB : BA;
        for (int k = 0; k < s->nu - 1; k++) {
            const mnv2_unit *u = &s->u[k];
            int b = u->kind == U_DW ? BD : BE;
            if (unit_out_floats(u) > cap[b]) cap[b] = unit_out_floats(u);
        }
    }
}

static void ensure_scratch(nn_mnv2 *m, int max_batch) {
    size_t need = 0;
    fold_all(m);
    ensure_irb(m);
    for (int i = 0; i < NN_MNV2_STAGES; i++)
        for (int k = 0; k < m->st[i].nu; k++) {
            const mnv2_unit *u = &m->st[i].u[k];
            if (u->kind != U_CONV) continue;
            size_t s = nn_conv2d_scratch_floats(&u->g, max_batch, u->cin);
            if (s > need) need = s;
        }
    if (m->scratch.base && need <= m->scratch_floats) return;
    nn_arena_free(&m->scratch);
    if (nn_arena_init(&m->scratch, "mobilenetv2 scratch", need * sizeof(float) + 64) != 0)
        nn_fatal("mobilenetv2: out of memory for %zu scratch floats", need);
    m->scratch_floats = need;
    m->col = need ? nn_arena_alloc(&m->scratch, need * sizeof(float)) : NULL;
}

/* ---- folded (inference) pass ------------------------------------------------- */

/* BN folded into the conv, activation fused. */
static void unit_forward_folded(nn_mnv2 *m, const mnv2_unit *u, nn_tensor *out,
                                const nn_tensor *in) {
    if (u->kind == U_DW)
        nn_dwconv2d_forward(out, in, u->fw, u->fb, &u->g, u->act);
    else
        nn_conv2d_forward(out, in, u->fw, u->fb, &u->g, u->act, m->col);
}

/* Runs stages [from, to) folded on x (n images); buf = {A, B, E, D}. Returns
 * the output view (in A, B, or E for the last stage). */
static nn_tensor run_folded(nn_mnv2 *m, int from, int to, const nn_tensor *x, int n, float **buf) {
    if (m->fold_dirty) fold_all(m);
    nn_tensor cur = *x;
    int ab = BA;   /* the buffer that receives the next block output */
    for (int i = from; i < to; i++) {
        mnv2_stage *s = &m->st[i];
        if (s->nu == 1) {   /* stem or last conv */
            nn_tensor out = view(buf[i == 18 ? BE : ab], n, s->out_hw, s->out_c);
            unit_forward_folded(m, &s->u[0], &out, &cur);
            cur = out;
            if (i != 18) ab = ab == BA ? BB : BA;
            continue;
        }
        /* inverted residual, fused: expand, depthwise, project (+ input) per
         * strip of rows; the expanded rows never leave the block's scratch */
        nn_tensor out = view(buf[ab], n, s->out_hw, s->out_c);
        nn__irb_forward(&m->irb[i], out.data, cur.data, n, m->irb_scr, m->irb_threads);
        cur = out;
        ab = ab == BA ? BB : BA;
    }
    return cur;
}

int nn_mnv2_prepare_infer(nn_mnv2 *m, int max_batch) {
    if (max_batch < 1) return nn_set_error("mobilenetv2: max_batch %d < 1", max_batch);
    ensure_scratch(m, max_batch);
    size_t cap[4];
    folded_sizes(m, 0, NN_MNV2_STAGES, cap);
    /* the fused blocks keep their expanded/depthwise rows in their own
     * scratch: E holds only the last conv's output, D is unused */
    cap[BE] = (size_t)m->st[18].out_hw * m->st[18].out_hw * m->st[18].out_c;
    cap[BD] = 0;
    size_t total = 0;
    for (int b = 0; b < 4; b++) total += cap[b] * max_batch;
    total += (size_t)m->feat_c * max_batch;
    nn_arena_free(&m->act);
    if (nn_arena_init(&m->act, "mobilenetv2 activations", total * sizeof(float) + 6 * 64) != 0)
        return nn_set_error("mobilenetv2: out of memory for batch %d activations", max_batch);
    for (int b = 0; b < 4; b++) m->ibuf[b] = nn_arena_alloc(&m->act, cap[b] * max_batch * sizeof(float));
    m->ipooled = nn_arena_alloc(&m->act, (size_t)m->feat_c * max_batch * sizeof(float));
    m->infer_batch = max_batch;
    return 0;
}

void nn_mnv2_infer(nn_mnv2 *m, const float *x, int n, float *pooled, float *fmap,
                   float *logits) {
    if (n < 1 || n > m->infer_batch)
        nn_fatal("nn_mnv2_infer: batch %d outside 1..%d (nn_mnv2_prepare_infer)", n, m->infer_batch);
    if (logits && !m->with_logits) nn_fatal("nn_mnv2_infer: logits asked of a model without a head");
    nn_tensor xin = view((float *)x, n, m->size, 3);
    nn_tensor f = run_folded(m, 0, NN_MNV2_STAGES, &xin, n, m->ibuf);
    nn_tensor p = view(m->ipooled, n, 1, m->feat_c);
    nn_gap_forward(&p, &f);
    if (pooled) memcpy(pooled, p.data, (size_t)n * m->feat_c * sizeof(float));
    if (fmap) memcpy(fmap, f.data, nn_tensor_numel(&f) * sizeof(float));
    if (logits) {
        nn_tensor lt = nn_tensor_make(logits, n, 1, 1, MNV2_HEAD_CLASSES);
        nn_dense_forward(&lt, &p, m->logits_w, m->logits_b, NN_ACT_NONE);
    }
}

/* ---- training ------------------------------------------------------------------ */

int nn_mnv2_prepare_train(nn_mnv2 *m, int max_batch, int train_from, int bn_train) {
    need_params(m, "nn_mnv2_prepare_train");
    if (max_batch < 1) return nn_set_error("mobilenetv2: max_batch %d < 1", max_batch);
    if (train_from < 0 || train_from > NN_MNV2_STAGES)
        return nn_set_error("mobilenetv2: train_from %d outside 0..%d", train_from, NN_MNV2_STAGES);
    ensure_scratch(m, max_batch);
    const size_t B = (size_t)max_batch;
    size_t cap[4] = {0, 0, 0, 0};
    folded_sizes(m, 0, train_from, cap);
    size_t tin = train_from < NN_MNV2_STAGES
                     ? (size_t)m->st[train_from].in_hw * m->st[train_from].in_hw * m->st[train_from].in_c
                     : 0;
    size_t gmax = tin, total = 0, nbufs = 0;
    for (int b = 0; b < 4; b++) total += cap[b] * B, nbufs++;
    total += tin * B + (size_t)m->feat_c * B;
    nbufs += 2;
    for (int i = train_from; i < NN_MNV2_STAGES; i++) {
        mnv2_stage *s = &m->st[i];
        for (int k = 0; k < s->nu; k++) {
            size_t o = unit_out_floats(&s->u[k]);
            total += 2 * o * B + 2 * (size_t)s->u[k].cout;
            nbufs += 4;
            if (o > gmax) gmax = o;
        }
        if (s->residual) total += (size_t)s->out_hw * s->out_hw * s->out_c * B, nbufs++;
    }
    total += 3 * gmax * B;
    nbufs += 3;
    nn_arena_free(&m->tact);
    nn_arena_free(&m->grads);
    m->train_batch = 0;
    if (nn_arena_init(&m->tact, "mobilenetv2 training activations",
                      total * sizeof(float) + nbufs * 64) != 0)
        return nn_set_error("mobilenetv2: out of memory for batch %d training activations "
                            "(%zu MB)", max_batch, total * sizeof(float) >> 20);
    size_t span = m->stage_off[NN_MNV2_STAGES] - m->stage_off[train_from < NN_MNV2_STAGES ? train_from : NN_MNV2_STAGES];
    if (nn_arena_init(&m->grads, "mobilenetv2 gradients", span * sizeof(float) + 64) != 0)
        return nn_set_error("mobilenetv2: out of memory for %zu gradients", span);
    m->gbase = nn_arena_floats(&m->grads, span);
    nn_arena *a = &m->tact;
    for (int b = 0; b < 4; b++) m->tbuf[b] = cap[b] ? nn_arena_alloc(a, cap[b] * B * sizeof(float)) : NULL;
    m->tin = tin ? nn_arena_alloc(a, tin * B * sizeof(float)) : NULL;
    m->tpooled = nn_arena_alloc(a, (size_t)m->feat_c * B * sizeof(float));
    const size_t base = m->stage_off[train_from < NN_MNV2_STAGES ? train_from : NN_MNV2_STAGES];
    for (int i = 0; i < NN_MNV2_STAGES; i++) {
        mnv2_stage *s = &m->st[i];
        int trainable = i >= train_from;
        for (int k = 0; k < s->nu; k++) {
            mnv2_unit *u = &s->u[k];
            if (!trainable) {
                u->pre = u->out = u->bmean = u->brstd = NULL;
                u->gw = u->ggamma = u->gbeta = NULL;
                continue;
            }
            size_t o = unit_out_floats(u) * B * sizeof(float);
            u->pre = nn_arena_alloc(a, o);
            u->out = nn_arena_alloc(a, o);
            u->bmean = nn_arena_alloc(a, (size_t)u->cout * sizeof(float));
            u->brstd = nn_arena_alloc(a, (size_t)u->cout * sizeof(float));
            u->gw = m->gbase + (u->w_off - base);
            u->ggamma = m->gbase + (u->gamma_off - base);
            u->gbeta = m->gbase + (u->beta_off - base);
        }
        s->sum = trainable && s->residual
                     ? nn_arena_alloc(a, (size_t)s->out_hw * s->out_hw * s->out_c * B * sizeof(float))
                     : NULL;
    }
    for (int b = 0; b < 3; b++) m->g[b] = nn_arena_alloc(a, gmax * B * sizeof(float));
    m->train_batch = max_batch;
    m->train_from = train_from;
    m->bn_train = bn_train != 0;
    return 0;
}

/* conv (no bias) -> BN (batch or running statistics) -> ReLU6 (if any). */
static void unit_forward_train(nn_mnv2 *m, mnv2_unit *u, const nn_tensor *in, float *scratch) {
    int n = in->n, hw = u->g.out_h;
    nn_tensor pre = view(u->pre, n, hw, u->cout), out = view(u->out, n, hw, u->cout);
    if (u->kind == U_DW)
        nn_dwconv2d_forward(&pre, in, u->w, NULL, &u->g, NN_ACT_NONE);
    else
        nn_conv2d_forward(&pre, in, u->w, NULL, &u->g, NN_ACT_NONE, scratch);
    if (m->bn_train) {
        /* BN and ReLU6 in one pass (same bits as BN, then ReLU6) */
        nn__batchnorm_forward_train_act(&out, u->bmean, u->brstd, &pre, u->gamma, u->beta,
                                        u->mean, u->var, MNV2_BN_MOMENTUM, m->eps, u->act);
    } else {
        nn_batchnorm_forward_infer(&out, &pre, u->gamma, u->beta, u->mean, u->var, m->eps, u->act);
    }
}

/* The stage's output view in training (after the residual add). */
static nn_tensor stage_out_train(const mnv2_stage *s, int n) {
    return view(s->residual ? s->sum : s->u[s->nu - 1].out, n, s->out_hw, s->out_c);
}

void nn_mnv2_train_forward(nn_mnv2 *m, const float *x, int n, float *pooled) {
    need_params(m, "nn_mnv2_train_forward");
    if (n < 1 || n > m->train_batch)
        nn_fatal("nn_mnv2_train_forward: batch %d outside 1..%d (nn_mnv2_prepare_train)", n,
                 m->train_batch);
    nn_tensor xin = view((float *)x, n, m->size, 3);
    nn_tensor cur = xin, f;
    if (m->train_from > 0) cur = run_folded(m, 0, m->train_from, &xin, n, m->tbuf);
    if (m->train_from == NN_MNV2_STAGES) {
        f = cur;
    } else {
        nn_tensor t = view(m->tin, n, cur.h, cur.c);
        nn_tensor_copy(&t, &cur);   /* kept for backward: x may be gone by then */
        nn_tensor h = t;
        for (int i = m->train_from; i < NN_MNV2_STAGES; i++) {
            mnv2_stage *s = &m->st[i];
            nn_tensor sin = h;
            for (int k = 0; k < s->nu; k++) {
                unit_forward_train(m, &s->u[k], &h, m->col);
                h = view(s->u[k].out, n, s->u[k].g.out_h, s->u[k].cout);
            }
            if (s->residual) {
                nn_tensor sum = view(s->sum, n, s->out_hw, s->out_c);
                nn_add_forward(&sum, &h, &sin);
                h = sum;
            }
        }
        f = h;
    }
    nn_tensor p = view(m->tpooled, n, 1, m->feat_c);
    nn_gap_forward(&p, &f);
    if (pooled) memcpy(pooled, p.data, (size_t)n * m->feat_c * sizeof(float));
    m->fold_dirty = 1;   /* an optimizer step is likely to follow */
}

/* dy holds the gradient of the unit output (overwritten); tmp receives the
 * BN input gradient; din (may be NULL) the unit input gradient. */
static void unit_backward(nn_mnv2 *m, mnv2_unit *u, nn_tensor *dy, nn_tensor *tmp, nn_tensor *din,
                          const nn_tensor *in, float *scratch) {
    int n = in->n, hw = u->g.out_h;
    nn_tensor pre = view(u->pre, n, hw, u->cout), out = view(u->out, n, hw, u->cout);
    /* ReLU6 backward from its output: 0 < out < 6 exactly where 0 < in < 6
     * (kept separate: fusing the mask into the BN backward measured slower) */
    if (u->act == NN_ACT_RELU6) nn_relu6_backward(dy, dy, &out);
    if (m->bn_train)
        nn_batchnorm_backward(tmp, u->ggamma, u->gbeta, dy, &pre, u->bmean, u->brstd, u->gamma);
    else
        nn_batchnorm_backward_infer(tmp, u->ggamma, u->gbeta, dy, &pre, u->gamma, u->mean, u->var,
                                    m->eps);
    if (u->kind == U_DW)
        nn_dwconv2d_backward(din, u->gw, NULL, tmp, in, u->w, &u->g);
    else
        nn_conv2d_backward(din, u->gw, NULL, tmp, in, u->w, &u->g, scratch);
}

void nn_mnv2_train_backward(nn_mnv2 *m, const float *dpooled, int n) {
    need_params(m, "nn_mnv2_train_backward");
    if (n < 1 || n > m->train_batch)
        nn_fatal("nn_mnv2_train_backward: batch %d outside 1..%d", n, m->train_batch);
    if (m->train_from >= NN_MNV2_STAGES) return;
    float *scratch = m->col;
    int p = 0;   /* g[p] holds the gradient of the current stage's output */
    {
        const mnv2_stage *s = &m->st[NN_MNV2_STAGES - 1];
        nn_tensor dp = view((float *)dpooled, n, 1, m->feat_c);
        nn_tensor d = view(m->g[p], n, s->out_hw, s->out_c);
        nn_gap_backward(&d, &dp);
    }
    for (int i = NN_MNV2_STAGES - 1; i >= m->train_from; i--) {
        mnv2_stage *s = &m->st[i];
        int x = (p + 1) % 3, y = (p + 2) % 3;
        nn_tensor sin = i == m->train_from ? view(m->tin, n, s->in_hw, s->in_c)
                                           : stage_out_train(&m->st[i - 1], n);
        nn_tensor dy = view(m->g[p], n, s->out_hw, s->out_c);
        for (int k = s->nu - 1; k >= 0; k--) {
            mnv2_unit *u = &s->u[k];
            nn_tensor in = k ? view(s->u[k - 1].out, n, s->u[k - 1].g.out_h, s->u[k - 1].cout) : sin;
            nn_tensor tmp = view(m->g[y], n, u->g.out_h, u->cout);
            nn_tensor din = view(m->g[x], n, in.h, in.c);
            int need_din = k > 0 || i > m->train_from;
            unit_backward(m, u, &dy, &tmp, need_din ? &din : NULL, &in, scratch);
            dy = din;
        }
        if (i > m->train_from) {
            if (s->residual) {
                nn_tensor dout = view(m->g[p], n, s->out_hw, s->out_c);
                nn_add_forward(&dy, &dy, &dout);   /* skip connection: d(input) += d(output) */
            }
            p = x;
        }
    }
}

size_t nn_mnv2_trainable(nn_mnv2 *m, float **params, float **grads) {
    need_params(m, "nn_mnv2_trainable");
    m->fold_dirty = 1;   /* the caller may write the parameters */
    if (!m->train_batch || m->train_from >= NN_MNV2_STAGES) {
        if (params) *params = NULL;
        if (grads) *grads = NULL;
        return 0;
    }
    if (params) *params = m->pbase + m->stage_off[m->train_from];
    if (grads) *grads = m->gbase;
    return m->stage_off[NN_MNV2_STAGES] - m->stage_off[m->train_from];
}

void nn_mnv2_zero_grad(nn_mnv2 *m) {
    need_params(m, "nn_mnv2_zero_grad");
    size_t n = nn_mnv2_trainable(m, NULL, NULL);
    if (n) memset(m->gbase, 0, n * sizeof(float));
}

/* ---- preprocessing --------------------------------------------------------- */

int nn_mnv2_preprocess_center(const nn_image *img, int size, float *dst) {
    int s = img->w < img->h ? img->w : img->h;
    float x0 = 0.5f * (float)(img->w - s), y0 = 0.5f * (float)(img->h - s);
    nn_image r;
    if (nn_image_crop_resize(&r, img, x0, y0, x0 + (float)s, y0 + (float)s, size, size)) return -1;
    nn_image_to_floats(dst, &r, 1.f / 127.5f, -1.f);
    nn_image_free(&r);
    return 0;
}

float *nn_mnv2_tensor(nn_mnv2 *m, const char *name, size_t *count, float **grad) {
    need_params(m, "nn_mnv2_tensor");
    if (grad) *grad = NULL;
    if (m->with_logits && !strcmp(name, "logits.weight")) {
        if (count) *count = (size_t)m->feat_c * MNV2_HEAD_CLASSES;
        return m->logits_w;
    }
    if (m->with_logits && !strcmp(name, "logits.bias")) {
        if (count) *count = MNV2_HEAD_CLASSES;
        return m->logits_b;
    }
    const char *dot = strchr(name, '.');
    for (int i = 0; dot && i < NN_MNV2_STAGES; i++)
        for (int k = 0; k < m->st[i].nu; k++) {
            mnv2_unit *u = &m->st[i].u[k];
            size_t ln = strlen(u->name);
            if (strncmp(name, u->name, ln) || name[ln] != '.') continue;
            const char *part = name + ln + 1;
            int trainable = m->train_batch && i >= m->train_from;
            float *d = NULL, *g = NULL;
            size_t c = (size_t)u->cout;
            if (!strcmp(part, "weight")) d = u->w, g = u->gw, c = u->wn;
            else if (!strcmp(part, "bn.gamma")) d = u->gamma, g = u->ggamma;
            else if (!strcmp(part, "bn.beta")) d = u->beta, g = u->gbeta;
            else if (!strcmp(part, "bn.mean")) d = u->mean;
            else if (!strcmp(part, "bn.var")) d = u->var;
            if (!d) return NULL;
            if (count) *count = c;
            if (grad && trainable) *grad = g;
            return d;
        }
    return NULL;
}
