/* ultraface.c — the UltraFace face detector on nnmask layers: loads the op
 * graph and weights, plans activation memory, fits frames, priors, decoding, NMS. */

#include "ultraface.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UF_MAX_HEADS 8
#define UF_MAX_SIZES 8
#define UF_MAX_IN 8
#define UF_NAME 64

enum { OP_CONV, OP_RELU, OP_ADD, OP_CONCAT };

typedef struct {
    char name[UF_NAME];
    int h, w, c;
    int def, last;      /* producing op (-1: input), last op reading it */
    size_t off, size;   /* floats in the activation plan */
    float *data;
} uf_tensor;

typedef struct {
    int type;
    int in[UF_MAX_IN], n_in, out;
    /* conv */
    char wname[UF_NAME], bname[UF_NAME];
    int cin, cout, k, stride, pad, dil, depthwise, relu;
    float *w, *b;
    nn_conv_geom g;
} uf_op;

typedef struct {
    int n_heads;
    int strides[UF_MAX_HEADS];
    int n_sizes[UF_MAX_HEADS];
    float sizes[UF_MAX_HEADS][UF_MAX_SIZES];
} uf_prior_cfg;

struct nn_uf {
    char path[512];
    char variant[32];
    nn_arena params, act;
    uf_op *ops;
    int n_ops;
    uf_tensor *t;
    int n_t;
    int score_heads[UF_MAX_HEADS], box_heads[UF_MAX_HEADS];
    uf_prior_cfg pc;
    float center_var, size_var, mean, scale;
    int softmax;
    size_t n_params;
    int in_w, in_h, P;
    float *input, *logits, *scores, *offsets, *priors, *scratch;
    nn_uf_box *cand;
    /* mapping of the last preprocessed frame: frame = (input - off) / scale */
    float map_ox, map_oy, map_sx, map_sy;
    int frame_w, frame_h;
};

static const uf_prior_cfg default_priors = {
    4, {8, 16, 32, 64}, {3, 2, 2, 3}, {{10, 16, 24}, {32, 48}, {64, 96}, {128, 192, 256}}};

void nn_uf_opts_default(nn_uf_opts *o) {
    o->score_threshold = 0.7f;
    o->iou_threshold = 0.3f;
    o->candidates = 200;
    o->fit = NN_UF_RESIZE;
    o->adjust[0] = 0.02f;
    o->adjust[1] = 0.125f;
    o->adjust[2] = 1.04f;
    o->adjust[3] = 0.91f;
}

/* ---------------------------------------------------------------- priors -- */

static int make_priors(float *p, const uf_prior_cfg *pc, int in_w, int in_h) {
    int n = 0;
    for (int k = 0; k < pc->n_heads; k++) {
        int s = pc->strides[k];
        int fw = (in_w + s - 1) / s, fh = (in_h + s - 1) / s;
        for (int j = 0; j < fh; j++)
            for (int i = 0; i < fw; i++)
                for (int m = 0; m < pc->n_sizes[k]; m++, n++) {
                    if (!p) continue;
                    float v[4] = {(i + 0.5f) / fw, (j + 0.5f) / fh, pc->sizes[k][m] / in_w,
                                  pc->sizes[k][m] / in_h};
                    for (int q = 0; q < 4; q++)
                        p[4 * (size_t)n + q] = v[q] < 0.f ? 0.f : (v[q] > 1.f ? 1.f : v[q]);
                }
    }
    return n;
}

int nn_uf_make_priors(float *priors, int in_w, int in_h) {
    return make_priors(priors, &default_priors, in_w, in_h);
}

static void decode1(float *o, const float *r, const float *p, float cv, float sv) {
    float cx = p[0] + r[0] * cv * p[2];
    float cy = p[1] + r[1] * cv * p[3];
    float w = p[2] * expf(r[2] * sv);
    float h = p[3] * expf(r[3] * sv);
    o[0] = cx - w * 0.5f;
    o[1] = cy - h * 0.5f;
    o[2] = cx + w * 0.5f;
    o[3] = cy + h * 0.5f;
}

void nn_uf_decode(float *boxes, const float *raw, const float *priors, int n, float center_var,
                  float size_var) {
    for (int i = 0; i < n; i++)
        decode1(boxes + 4 * (size_t)i, raw + 4 * (size_t)i, priors + 4 * (size_t)i, center_var,
                size_var);
}

/* ------------------------------------------------------------------- NMS -- */

float nn_uf_iou(const nn_uf_box *a, const nn_uf_box *b) {
    float ix0 = fmaxf(a->x0, b->x0), iy0 = fmaxf(a->y0, b->y0);
    float ix1 = fminf(a->x1, b->x1), iy1 = fminf(a->y1, b->y1);
    float iw = fmaxf(ix1 - ix0, 0.f), ih = fmaxf(iy1 - iy0, 0.f);
    float inter = iw * ih;
    float aa = fmaxf(a->x1 - a->x0, 0.f) * fmaxf(a->y1 - a->y0, 0.f);
    float ab = fmaxf(b->x1 - b->x0, 0.f) * fmaxf(b->y1 - b->y0, 0.f);
    float u = aa + ab - inter;
    return u > 0.f ? inter / u : 0.f;
}

/* stable insertion sort by descending score (n is a few hundred at most) */
static void sort_boxes(nn_uf_box *b, int n) {
    for (int i = 1; i < n; i++) {
        nn_uf_box v = b[i];
        int j = i - 1;
        while (j >= 0 && b[j].score < v.score) {
            b[j + 1] = b[j];
            j--;
        }
        b[j + 1] = v;
    }
}

int nn_uf_nms(nn_uf_box *boxes, int n, float iou) {
    sort_boxes(boxes, n);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int ok = 1;
        for (int j = 0; j < kept && ok; j++)
            if (nn_uf_iou(&boxes[j], &boxes[i]) > iou) ok = 0;
        if (ok) boxes[kept++] = boxes[i];
    }
    return kept;
}

/* ------------------------------------------------------------ frame fit -- */

/* Triangle-filter taps of output coordinate o for a scale of `ratio` source
 * pixels per output pixel: the window [lo, hi] and weight of source i. */
static inline void taps(int o, float ratio, int src_n, int *lo, int *hi, float *center,
                        float *support) {
    float c = (o + 0.5f) * ratio - 0.5f;
    float s = ratio > 1.f ? ratio : 1.f;
    int a = (int)floorf(c - s) + 1, b = (int)floorf(c + s);
    if (a < 0) a = 0;
    if (b > src_n - 1) b = src_n - 1;
    if (b < a) b = a = c < 0 ? 0 : src_n - 1;
    *lo = a;
    *hi = b;
    *center = c;
    *support = s;
}

static inline float tri(float d, float s) {
    float v = 1.f - fabsf(d) / s;
    return v > 0.f ? v : 0.f;
}

/* Resamples the frame into a rw x rh window of dst (row stride dst_w*3) at
 * (ox, oy); dst values (p - mean) * scale. */
static void resample(float *dst, int dst_w, int ox, int oy, int rw, int rh, const nn_image *f,
                     float mean, float scale) {
    float rx = (float)f->w / rw, ry = (float)f->h / rh;
#pragma omp parallel for schedule(static) if ((size_t)f->w * f->h > 200000)
    for (int y = 0; y < rh; y++) {
        float *row = dst + ((size_t)(oy + y) * dst_w + ox) * 3;
        int ylo, yhi;
        float yc, ys;
        taps(y, ry, f->h, &ylo, &yhi, &yc, &ys);
        for (int x = 0; x < rw; x++) {
            int xlo, xhi;
            float xc, xs;
            taps(x, rx, f->w, &xlo, &xhi, &xc, &xs);
            float acc[3] = {0.f, 0.f, 0.f}, wsum = 0.f;
            for (int sy = ylo; sy <= yhi; sy++) {
                float wy = ylo == yhi ? 1.f : tri(sy - yc, ys);
                if (wy == 0.f) continue;
                const uint8_t *s = f->rgb + ((size_t)sy * f->w) * 3;
                for (int sx = xlo; sx <= xhi; sx++) {
                    float wgt = wy * (xlo == xhi ? 1.f : tri(sx - xc, xs));
                    acc[0] += wgt * s[3 * sx];
                    acc[1] += wgt * s[3 * sx + 1];
                    acc[2] += wgt * s[3 * sx + 2];
                    wsum += wgt;
                }
            }
            float inv = wsum > 0.f ? 1.f / wsum : 0.f;
            for (int q = 0; q < 3; q++) row[3 * x + q] = (acc[q] * inv - mean) * scale;
        }
    }
}

void nn_uf_fit_frame(float *dst, int dst_w, int dst_h, const nn_image *frame, nn_uf_fit fit,
                     float mean, float scale, float *off_x, float *off_y, float *scale_x,
                     float *scale_y) {
    int rw = dst_w, rh = dst_h, ox = 0, oy = 0;
    if (fit == NN_UF_LETTERBOX) {
        double s = fmin((double)dst_w / frame->w, (double)dst_h / frame->h);
        rw = (int)lround(frame->w * s);
        rh = (int)lround(frame->h * s);
        if (rw < 1) rw = 1;
        if (rh < 1) rh = 1;
        if (rw > dst_w) rw = dst_w;
        if (rh > dst_h) rh = dst_h;
        ox = (dst_w - rw) / 2;
        oy = (dst_h - rh) / 2;
        memset(dst, 0, sizeof(float) * 3 * (size_t)dst_w * dst_h);
    }
    resample(dst, dst_w, ox, oy, rw, rh, frame, mean, scale);
    *off_x = (float)ox;
    *off_y = (float)oy;
    *scale_x = (float)rw / frame->w;
    *scale_y = (float)rh / frame->h;
}

void nn_uf_size_for_frame(int frame_w, int frame_h, int long_side, int *w, int *h) {
    double s = (double)long_side / (frame_w > frame_h ? frame_w : frame_h);
    int a = (int)lround(frame_w * s / 32.0) * 32, b = (int)lround(frame_h * s / 32.0) * 32;
    *w = a < 32 ? 32 : a;
    *h = b < 32 ? 32 : b;
}

/* ---------------------------------------------------------------- loading -- */

static int find_tensor(const nn_uf *d, const char *name) {
    for (int i = 0; i < d->n_t; i++)
        if (!strcmp(d->t[i].name, name)) return i;
    return -1;
}

static int json_int(const cJSON *o, const char *key, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valueint;
    return 0;
}

static int json_bool(const cJSON *o, const char *key, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsBool(x)) return -1;
    *v = cJSON_IsTrue(x);
    return 0;
}

static int json_str(const cJSON *o, const char *key, char *dst, size_t cap) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(x) || strlen(x->valuestring) >= cap) return -1;
    strcpy(dst, x->valuestring);
    return 0;
}

/* tensor index for an op input (must exist) */
static int use_tensor(nn_uf *d, const cJSON *name, int op) {
    if (!cJSON_IsString(name)) return -1;
    int i = find_tensor(d, name->valuestring);
    if (i < 0) return -1;
    if (op > d->t[i].last) d->t[i].last = op;
    return i;
}

/* a new tensor produced by op */
static int def_tensor(nn_uf *d, const cJSON *name, int op) {
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= UF_NAME) return -1;
    if (find_tensor(d, name->valuestring) >= 0) return -1;
    uf_tensor *t = &d->t[d->n_t];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name->valuestring);
    t->def = t->last = op;
    return d->n_t++;
}

static int parse_priors(nn_uf *d, const char *js) {
    cJSON *root = cJSON_Parse(js);
    int rc = -1;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "strides");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "min_sizes");
    if (cJSON_IsArray(st) && cJSON_IsArray(ms) && cJSON_GetArraySize(st) == cJSON_GetArraySize(ms) &&
        cJSON_GetArraySize(st) >= 1 && cJSON_GetArraySize(st) <= UF_MAX_HEADS) {
        uf_prior_cfg *pc = &d->pc;
        pc->n_heads = cJSON_GetArraySize(st);
        rc = 0;
        for (int k = 0; k < pc->n_heads && !rc; k++) {
            const cJSON *s = cJSON_GetArrayItem(st, k), *m = cJSON_GetArrayItem(ms, k);
            if (!cJSON_IsNumber(s) || s->valueint < 1 || !cJSON_IsArray(m) ||
                cJSON_GetArraySize(m) < 1 || cJSON_GetArraySize(m) > UF_MAX_SIZES) {
                rc = -1;
                break;
            }
            pc->strides[k] = s->valueint;
            pc->n_sizes[k] = cJSON_GetArraySize(m);
            for (int q = 0; q < pc->n_sizes[k]; q++) {
                const cJSON *v = cJSON_GetArrayItem(m, q);
                if (!cJSON_IsNumber(v) || !(v->valuedouble > 0)) rc = -1;
                else pc->sizes[k][q] = (float)v->valuedouble;
            }
        }
    }
    cJSON_Delete(root);
    return rc;
}

static int parse_graph(nn_uf *d, const char *js) {
    const char *path = d->path;
    cJSON *root = cJSON_Parse(js);
    if (!root) return nn_set_error("%s: graph metadata is not valid JSON", path);
    int rc = -1;
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(root, "ops");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(root, "scores");
    const cJSON *bx = cJSON_GetObjectItemCaseSensitive(root, "boxes");
    int n = cJSON_GetArraySize(ops);
    if (!cJSON_IsArray(ops) || n < 1 || n > 4096 || !cJSON_IsString(in) || !cJSON_IsArray(sc) ||
        !cJSON_IsArray(bx)) {
        nn_set_error("%s: graph metadata lacks input/ops/scores/boxes", path);
        goto out;
    }
    d->ops = calloc((size_t)n, sizeof *d->ops);
    d->t = calloc((size_t)n + 1, sizeof *d->t);
    if (!d->ops || !d->t) {
        nn_set_error("%s: out of memory", path);
        goto out;
    }
    d->n_ops = n;
    def_tensor(d, in, -1);
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetArrayItem(ops, i);
        uf_op *op = &d->ops[i];
        char type[16];
        if (json_str(o, "op", type, sizeof type)) {
            nn_set_error("%s: graph op %d has no type", path, i);
            goto out;
        }
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(o, "in");
        if (!strcmp(type, "conv") || !strcmp(type, "relu")) {
            op->type = type[0] == 'c' ? OP_CONV : OP_RELU;
            op->n_in = 1;
            op->in[0] = use_tensor(d, ins, i);
        } else if (!strcmp(type, "add") || !strcmp(type, "concat")) {
            op->type = type[0] == 'a' ? OP_ADD : OP_CONCAT;
            op->n_in = cJSON_GetArraySize(ins);
            if (!cJSON_IsArray(ins) || op->n_in < 2 || op->n_in > UF_MAX_IN ||
                (op->type == OP_ADD && op->n_in != 2)) {
                nn_set_error("%s: graph op %d (%s): bad input list", path, i, type);
                goto out;
            }
            for (int q = 0; q < op->n_in; q++) op->in[q] = use_tensor(d, cJSON_GetArrayItem(ins, q), i);
        } else {
            nn_set_error("%s: graph op %d: unknown op \"%s\"", path, i, type);
            goto out;
        }
        for (int q = 0; q < op->n_in; q++)
            if (op->in[q] < 0) {
                nn_set_error("%s: graph op %d (%s): input is not defined before it", path, i, type);
                goto out;
            }
        op->out = def_tensor(d, cJSON_GetObjectItemCaseSensitive(o, "out"), i);
        if (op->out < 0) {
            nn_set_error("%s: graph op %d (%s): output missing or defined twice", path, i, type);
            goto out;
        }
        if (op->type == OP_CONV) {
            if (json_str(o, "weight", op->wname, UF_NAME) || json_str(o, "bias", op->bname, UF_NAME) ||
                json_int(o, "cin", &op->cin) || json_int(o, "cout", &op->cout) ||
                json_int(o, "k", &op->k) || json_int(o, "stride", &op->stride) ||
                json_int(o, "pad", &op->pad) || json_int(o, "dil", &op->dil) ||
                json_bool(o, "depthwise", &op->depthwise) || json_bool(o, "relu", &op->relu) ||
                op->cin < 1 || op->cout < 1 || op->k < 1 || op->k > 15 || op->stride < 1 ||
                op->stride > 8 || op->pad < 0 || op->pad > 32 || op->dil < 1 || op->dil > 16 ||
                op->cin > 65536 || op->cout > 65536 || (op->depthwise && op->cin != op->cout)) {
                nn_set_error("%s: graph op %d (conv): missing or bad fields", path, i);
                goto out;
            }
        }
    }
    if (cJSON_GetArraySize(sc) != d->pc.n_heads || cJSON_GetArraySize(bx) != d->pc.n_heads) {
        nn_set_error("%s: graph has %d score and %d box heads, priors have %d feature maps", path,
                     cJSON_GetArraySize(sc), cJSON_GetArraySize(bx), d->pc.n_heads);
        goto out;
    }
    for (int k = 0; k < d->pc.n_heads; k++) {
        d->score_heads[k] = use_tensor(d, cJSON_GetArrayItem(sc, k), n);
        d->box_heads[k] = use_tensor(d, cJSON_GetArrayItem(bx, k), n);
        if (d->score_heads[k] < 0 || d->box_heads[k] < 0) {
            nn_set_error("%s: graph head %d names an unknown tensor", path, k);
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static int load_weights(nn_uf *d, const nn_st *st) {
    size_t total = 0;
    for (int i = 0; i < d->n_ops; i++) {
        uf_op *op = &d->ops[i];
        if (op->type != OP_CONV) continue;
        size_t wn = (size_t)op->k * op->k * op->cin * (op->depthwise ? 1 : op->cout);
        total += (wn + 16 + op->cout + 16) * sizeof(float);
    }
    if (nn_arena_init(&d->params, "ultraface params", total + 64))
        return nn_set_error("%s: out of memory for %zu bytes of parameters", d->path, total);
    d->n_params = 0;
    for (int i = 0; i < d->n_ops; i++) {
        uf_op *op = &d->ops[i];
        if (op->type != OP_CONV) continue;
        int64_t ws[4] = {op->k, op->k, op->cin, op->cout}, bs[1] = {op->cout};
        size_t wn = (size_t)op->k * op->k * op->cin * (op->depthwise ? 1 : op->cout);
        op->w = nn_arena_floats(&d->params, wn);
        op->b = nn_arena_floats(&d->params, (size_t)op->cout);
        if (nn_st_read_f32(st, op->wname, op->w, op->depthwise ? 3 : 4, ws) ||
            nn_st_read_f32(st, op->bname, op->b, 1, bs))
            return -1;
        d->n_params += wn + (size_t)op->cout;
    }
    return 0;
}

static const char *meta_or(const nn_st *st, const char *key, const char *def) {
    const char *v = nn_st_meta(st, key);
    return v ? v : def;
}

nn_uf *nn_uf_load(const char *path) {
    nn_st *st = nn_st_open(path);
    if (!st) return NULL;
    nn_uf *d = calloc(1, sizeof *d);
    if (!d) {
        nn_st_close(st);
        nn_set_error("%s: out of memory", path);
        return NULL;
    }
    snprintf(d->path, sizeof d->path, "%s", path);
    const char *arch = nn_st_meta(st, "arch"), *graph = nn_st_meta(st, "graph");
    const char *pre = meta_or(st, "preprocess", "");
    const char *pri = nn_st_meta(st, "priors"), *size = nn_st_meta(st, "input_size");
    int w = 0, h = 0;
    if (!arch || strcmp(arch, "ultraface")) {
        nn_set_error("%s: not an UltraFace detector (metadata arch=%s; convert one with "
                     "weights/convert_ultraface.py)", path, arch ? arch : "missing");
        goto fail;
    }
    if (!graph || !pri || !size || sscanf(size, "%dx%d", &w, &h) != 2) {
        nn_set_error("%s: metadata lacks graph, priors or input_size", path);
        goto fail;
    }
    if (strcmp(pre, "(rgb-127)/128")) {
        nn_set_error("%s: unsupported preprocess \"%s\"", path, pre);
        goto fail;
    }
    d->mean = 127.f;
    d->scale = 1.f / 128.f;
    d->center_var = strtof(meta_or(st, "center_variance", "0.1"), NULL);
    d->size_var = strtof(meta_or(st, "size_variance", "0.2"), NULL);
    d->softmax = !strcmp(meta_or(st, "scores_softmax", "1"), "1");
    if (!(d->center_var > 0.f) || !(d->size_var > 0.f)) {
        nn_set_error("%s: bad center_variance/size_variance", path);
        goto fail;
    }
    snprintf(d->variant, sizeof d->variant, "%s", meta_or(st, "variant", "ultraface"));
    if (parse_priors(d, pri)) {
        nn_set_error("%s: bad priors metadata", path);
        goto fail;
    }
    if (parse_graph(d, graph) || load_weights(d, st)) goto fail;
    nn_st_close(st);
    st = NULL;
    if (nn_uf_set_input_size(d, w, h)) goto fail;
    return d;
fail:
    if (st) nn_st_close(st);
    nn_uf_free(d);
    return NULL;
}

void nn_uf_free(nn_uf *d) {
    if (!d) return;
    if (d->params.base) nn_arena_free(&d->params);
    if (d->act.base) nn_arena_free(&d->act);
    free(d->ops);
    free(d->t);
    free(d);
}

/* ------------------------------------------------------- shapes and plan -- */

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Shape inference for input size w x h; returns the activation plan size
 * in floats, the conv scratch in *scratch; -1 on an inconsistent graph. */
static long plan(nn_uf *d, int w, int h, size_t *scratch) {
    uf_tensor *t = d->t;
    t[0].h = h;
    t[0].w = w;
    t[0].c = 3;
    *scratch = 0;
    for (int i = 0; i < d->n_ops; i++) {
        uf_op *op = &d->ops[i];
        uf_tensor *a = &t[op->in[0]], *o = &t[op->out];
        if (op->type == OP_CONV) {
            if (a->c != op->cin)
                return nn_set_error("%s: conv %s expects %d input channels, gets %d", d->path,
                                    op->wname, op->cin, a->c);
            if (nn_conv_geom_init(&op->g, a->h, a->w, op->k, op->k, op->stride, op->dil,
                                  NN_PAD_EXPLICIT, op->pad))
                return nn_set_error("%s: conv %s at input %dx%d: %s", d->path, op->wname, w, h,
                                    nn_error());
            o->h = op->g.out_h;
            o->w = op->g.out_w;
            o->c = op->cout;
            if (!op->depthwise) {
                size_t s = nn_conv2d_scratch_floats(&op->g, 1, op->cin);
                if (s > *scratch) *scratch = s;
            }
        } else {
            int c = 0;
            for (int q = 0; q < op->n_in; q++) {
                uf_tensor *b = &t[op->in[q]];
                if (b->h != a->h || b->w != a->w || (op->type == OP_ADD && b->c != a->c))
                    return nn_set_error("%s: op %d: inputs %s and %s differ in shape", d->path, i,
                                        a->name, b->name);
                c += b->c;
            }
            o->h = a->h;
            o->w = a->w;
            o->c = op->type == OP_CONCAT ? c : a->c;
        }
    }
    /* heads against priors */
    for (int k = 0; k < d->pc.n_heads; k++) {
        int s = d->pc.strides[k], fw = (w + s - 1) / s, fh = (h + s - 1) / s;
        int na = d->pc.n_sizes[k];
        const uf_tensor *a = &t[d->score_heads[k]], *b = &t[d->box_heads[k]];
        if (a->h != fh || a->w != fw || b->h != fh || b->w != fw || a->c != 2 * na ||
            b->c != 4 * na)
            return nn_set_error("%s: head %d at input %dx%d is %dx%dx%d / %dx%dx%d, priors "
                                "need %dx%dx%d / x%d",
                                d->path, k, w, h, a->h, a->w, a->c, b->h, b->w, b->c, fh, fw,
                                2 * na, 4 * na);
    }
    /* greedy first-fit placement of tensors with overlapping lifetimes */
    size_t total = 0;
    for (int i = 0; i < d->n_t; i++) {
        t[i].size = round16((size_t)t[i].h * t[i].w * t[i].c);
        size_t off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < i; j++) {
                if (t[j].def > t[i].last || t[i].def > t[j].last) continue; /* disjoint in time */
                if (off < t[j].off + t[j].size && t[j].off < off + t[i].size) {
                    off = t[j].off + t[j].size;
                    moved = 1;
                }
            }
        }
        t[i].off = off;
        if (off + t[i].size > total) total = off + t[i].size;
    }
    return (long)total;
}

int nn_uf_set_input_size(nn_uf *d, int w, int h) {
    if (w < 32 || h < 32 || w > 4096 || h > 4096)
        return nn_set_error("%s: detector input %dx%d out of range [32, 4096]", d->path, w, h);
    size_t scratch;
    long total = plan(d, w, h, &scratch);
    if (total < 0) return -1;
    int P = make_priors(NULL, &d->pc, w, h);
    size_t floats = (size_t)total + round16(scratch) + 5 * round16((size_t)P * 4) + 64;
    size_t bytes = floats * sizeof(float) + (size_t)P * sizeof(nn_uf_box) + 16 * 64;
    if (!d->act.base || d->act.size < bytes) {
        if (d->act.base) nn_arena_free(&d->act);
        if (nn_arena_init(&d->act, "ultraface activations", bytes))
            return nn_set_error("%s: out of memory for %zu bytes of activations", d->path, bytes);
    }
    nn_arena_reset(&d->act);
    float *base = nn_arena_floats(&d->act, (size_t)total);
    for (int i = 0; i < d->n_t; i++) d->t[i].data = base + d->t[i].off;
    d->scratch = scratch ? nn_arena_floats(&d->act, scratch) : NULL;
    d->logits = nn_arena_floats(&d->act, (size_t)P * 2);
    d->scores = nn_arena_floats(&d->act, (size_t)P * 2);
    d->offsets = nn_arena_floats(&d->act, (size_t)P * 4);
    d->priors = nn_arena_floats(&d->act, (size_t)P * 4);
    d->cand = nn_arena_alloc(&d->act, (size_t)P * sizeof(nn_uf_box));
    make_priors(d->priors, &d->pc, w, h);
    d->input = d->t[0].data;
    d->in_w = w;
    d->in_h = h;
    d->P = P;
    d->frame_w = w;
    d->frame_h = h;
    d->map_ox = d->map_oy = 0.f;
    d->map_sx = d->map_sy = 1.f;
    return 0;
}

const char *nn_uf_variant(const nn_uf *d) { return d->variant; }
size_t nn_uf_param_count(const nn_uf *d) { return d->n_params; }
int nn_uf_input_w(const nn_uf *d) { return d->in_w; }
int nn_uf_input_h(const nn_uf *d) { return d->in_h; }
int nn_uf_num_priors(const nn_uf *d) { return d->P; }
size_t nn_uf_memory_bytes(const nn_uf *d) { return d->params.size + d->act.size; }
float *nn_uf_input(nn_uf *d) { return d->input; }
const float *nn_uf_scores(const nn_uf *d) { return d->scores; }
const float *nn_uf_offsets(const nn_uf *d) { return d->offsets; }
const float *nn_uf_priors(const nn_uf *d) { return d->priors; }

/* ---------------------------------------------------------------- forward -- */

static nn_tensor tview(const uf_tensor *t) { return nn_tensor_make(t->data, 1, t->h, t->w, t->c); }

void nn_uf_forward(nn_uf *d) {
    for (int i = 0; i < d->n_ops; i++) {
        const uf_op *op = &d->ops[i];
        nn_tensor out = tview(&d->t[op->out]);
        nn_tensor in = tview(&d->t[op->in[0]]);
        switch (op->type) {
        case OP_CONV:
            if (op->depthwise)
                nn_dwconv2d_forward(&out, &in, op->w, op->b, &op->g,
                                    op->relu ? NN_ACT_RELU : NN_ACT_NONE);
            else
                nn_conv2d_forward(&out, &in, op->w, op->b, &op->g,
                                  op->relu ? NN_ACT_RELU : NN_ACT_NONE, d->scratch);
            break;
        case OP_RELU: nn_relu_forward(&out, &in); break;
        case OP_ADD: {
            nn_tensor b = tview(&d->t[op->in[1]]);
            nn_add_forward(&out, &in, &b);
            break;
        }
        case OP_CONCAT: {
            nn_tensor v[UF_MAX_IN];
            const nn_tensor *p[UF_MAX_IN];
            for (int q = 0; q < op->n_in; q++) {
                v[q] = tview(&d->t[op->in[q]]);
                p[q] = &v[q];
            }
            nn_concat_forward(&out, p, op->n_in);
            break;
        }
        }
    }
    /* NHWC heads [fh, fw, A*k] flatten to rows in prior order */
    size_t ns = 0, nb = 0;
    for (int k = 0; k < d->pc.n_heads; k++) {
        const uf_tensor *a = &d->t[d->score_heads[k]], *b = &d->t[d->box_heads[k]];
        size_t na = (size_t)a->h * a->w * a->c, nbb = (size_t)b->h * b->w * b->c;
        memcpy(d->logits + ns, a->data, na * sizeof(float));
        memcpy(d->offsets + nb, b->data, nbb * sizeof(float));
        ns += na;
        nb += nbb;
    }
    if (d->softmax) {
        nn_tensor lg = nn_tensor_make(d->logits, d->P, 1, 1, 2);
        nn_tensor sc = nn_tensor_make(d->scores, d->P, 1, 1, 2);
        nn_softmax_forward(&sc, &lg);
    } else {
        memcpy(d->scores, d->logits, (size_t)d->P * 2 * sizeof(float));
    }
}

void nn_uf_preprocess(nn_uf *d, const nn_image *frame, nn_uf_fit fit) {
    nn_uf_fit_frame(d->input, d->in_w, d->in_h, frame, fit, d->mean, d->scale, &d->map_ox,
                    &d->map_oy, &d->map_sx, &d->map_sy);
    d->frame_w = frame->w;
    d->frame_h = frame->h;
}

/* ----------------------------------------------------------- postprocess -- */

int nn_uf_postprocess(nn_uf *d, const nn_uf_opts *o, nn_uf_box *out, int max) {
    nn_uf_opts def;
    if (!o) {
        nn_uf_opts_default(&def);
        o = &def;
    }
    int K = o->candidates > 0 ? o->candidates : d->P;
    if (K > d->P) K = d->P;
    /* the K best boxes above the threshold, kept sorted (stable: ties keep
     * prior order) */
    int n = 0;
    for (int i = 0; i < d->P; i++) {
        float s = d->scores[2 * (size_t)i + 1];
        if (!(s > o->score_threshold)) continue;
        if (n == K && !(s > d->cand[n - 1].score)) continue;
        int j = n < K ? n++ : n - 1;
        while (j > 0 && d->cand[j - 1].score < s) {
            d->cand[j] = d->cand[j - 1];
            j--;
        }
        float b[4];
        decode1(b, d->offsets + 4 * (size_t)i, d->priors + 4 * (size_t)i, d->center_var,
                d->size_var);
        d->cand[j] = (nn_uf_box){b[0], b[1], b[2], b[3], s};
    }
    int kept = nn_uf_nms(d->cand, n, o->iou_threshold);
    for (int i = 0; i < kept && i < max; i++) out[i] = d->cand[i];
    return kept;
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

int nn_uf_detect(nn_uf *d, const nn_image *frame, const nn_uf_opts *o, nn_uf_box *out, int max) {
    nn_uf_opts def;
    if (!o) {
        nn_uf_opts_default(&def);
        o = &def;
    }
    if (!frame || !frame->rgb || frame->w < 1 || frame->h < 1) return 0;
    nn_uf_preprocess(d, frame, o->fit);
    nn_uf_forward(d);
    int kept = nn_uf_postprocess(d, o, d->cand, d->P);
    int n = 0;
    for (int i = 0; i < kept; i++) {
        nn_uf_box b = d->cand[i];
        float w = b.x1 - b.x0, h = b.y1 - b.y0;
        float cx = 0.5f * (b.x0 + b.x1) + o->adjust[0] * w;
        float cy = 0.5f * (b.y0 + b.y1) + o->adjust[1] * h;
        w *= o->adjust[2];
        h *= o->adjust[3];
        b.x0 = cx - 0.5f * w;
        b.x1 = cx + 0.5f * w;
        b.y0 = cy - 0.5f * h;
        b.y1 = cy + 0.5f * h;
        b.x0 = clampf((b.x0 * d->in_w - d->map_ox) / d->map_sx, 0.f, (float)frame->w);
        b.x1 = clampf((b.x1 * d->in_w - d->map_ox) / d->map_sx, 0.f, (float)frame->w);
        b.y0 = clampf((b.y0 * d->in_h - d->map_oy) / d->map_sy, 0.f, (float)frame->h);
        b.y1 = clampf((b.y1 * d->in_h - d->map_oy) / d->map_sy, 0.f, (float)frame->h);
        if (!(b.x1 - b.x0 >= 1.f) || !(b.y1 - b.y0 >= 1.f)) continue;
        if (n < max) out[n] = b;
        n++;
    }
    return n;
}
