/* classifier.c — the trained mask classifier (MobileNetV2 + dense head):
 * creation, self-describing safetensors save/load, batched inference, head training step. */

#include "classifier.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int head_alloc(nn_classifier *c) {
    c->outs = c->n_classes == 2 ? 1 : c->n_classes;
    size_t F = (size_t)c->feat, U = (size_t)c->head_units, O = (size_t)c->outs;
    c->n_params = F * U + U + U * O + O;
    c->params = calloc(c->n_params, sizeof(float));
    if (!c->params) return nn_set_error("classifier: out of memory");
    c->fc1_w = c->params;
    c->fc1_b = c->fc1_w + F * U;
    c->fc2_w = c->fc1_b + U;
    c->fc2_b = c->fc2_w + U * O;
    return 0;
}

static void glorot(float *w, size_t fan_in, size_t fan_out, nn_rng *rng) {
    float lim = sqrtf(6.0f / (float)(fan_in + fan_out));
    for (size_t i = 0; i < fan_in * fan_out; i++) w[i] = nn_rng_range(rng, -lim, lim);
}

nn_classifier *nn_classifier_new(nn_mnv2 *backbone, int n_classes, const char (*classes)[64],
                                 int head_units, float dropout, nn_rng *rng) {
    if (n_classes < 2 || n_classes > NN_CLF_MAX_CLASSES) {
        nn_set_error("classifier: %d classes (2..%d supported)", n_classes, NN_CLF_MAX_CLASSES);
        return NULL;
    }
    nn_classifier *c = calloc(1, sizeof *c);
    if (!c) {
        nn_set_error("classifier: out of memory");
        return NULL;
    }
    c->backbone = backbone;
    c->n_classes = n_classes;
    for (int i = 0; i < n_classes; i++) snprintf(c->classes[i], 64, "%s", classes[i]);
    c->input_size = nn_mnv2_input_size(backbone);
    c->alpha = nn_mnv2_alpha(backbone);
    c->feat = nn_mnv2_feature_channels(backbone);
    c->head_units = head_units;
    c->dropout = dropout;
    c->threshold = 0.5f;
    snprintf(c->threshold_rule, sizeof c->threshold_rule, "fixed");
    if (head_alloc(c)) {
        free(c);
        return NULL;
    }
    glorot(c->fc1_w, (size_t)c->feat, (size_t)head_units, rng);
    glorot(c->fc2_w, (size_t)head_units, (size_t)c->outs, rng);
    return c;
}

void nn_classifier_free(nn_classifier *c) {
    if (!c) return;
    nn_mnv2_free(c->backbone);
    free(c->params);
    free(c->x);
    free(c->pooled);
    free(c->h);
    free(c->logits);
    free(c);
}

int nn_classifier_write(const nn_classifier *c, nn_st_writer *w) {
    char buf[1024];
    int64_t s1[2] = {c->feat, c->head_units}, b1[1] = {c->head_units};
    int64_t s2[2] = {c->head_units, c->outs}, b2[1] = {c->outs};
    if (nn_st_writer_add_f32(w, "head.fc1.weight", c->fc1_w, 2, s1) ||
        nn_st_writer_add_f32(w, "head.fc1.bias", c->fc1_b, 1, b1) ||
        nn_st_writer_add_f32(w, "head.fc2.weight", c->fc2_w, 2, s2) ||
        nn_st_writer_add_f32(w, "head.fc2.bias", c->fc2_b, 1, b2))
        return -1;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < c->n_classes; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(c->classes[i]));
    char *cls = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    int r = nn_st_writer_meta(w, "format", "nnmask") ||
            nn_st_writer_meta(w, "arch", "mobilenetv2-classifier") ||
            nn_st_writer_meta(w, "classes", cls);
    free(cls);
    snprintf(buf, sizeof buf, "%d", c->input_size);
    r = r || nn_st_writer_meta(w, "input_size", buf);
    snprintf(buf, sizeof buf, "%g", (double)c->alpha);
    r = r || nn_st_writer_meta(w, "alpha", buf);
    r = r || nn_st_writer_meta(w, "preprocess", "rgb*(1/127.5)-1");
    r = r || nn_st_writer_meta(w, "resize", "squash");
    r = r || nn_st_writer_meta(w, "bn_eps", "0.001");
    snprintf(buf, sizeof buf, "%d", c->head_units);
    r = r || nn_st_writer_meta(w, "head_units", buf);
    snprintf(buf, sizeof buf, "%g", (double)c->dropout);
    r = r || nn_st_writer_meta(w, "dropout", buf);
    r = r || nn_st_writer_meta(w, "output", c->outs == 1 ? "sigmoid" : "softmax");
    snprintf(buf, sizeof buf, "%.9g", (double)c->threshold);
    r = r || nn_st_writer_meta(w, "threshold", buf);
    r = r || nn_st_writer_meta(w, "threshold_rule", c->threshold_rule);
    nn_classifier_rule_text(c, buf, sizeof buf);
    r = r || nn_st_writer_meta(w, "decision", buf);
    return r ? -1 : 0;
}

int nn_classifier_save(const nn_classifier *c, const char *path, const char *const *extra_meta) {
    nn_st_writer *w = nn_st_writer_new();
    if (!w) return nn_set_error("%s: out of memory", path);
    int r = nn_mnv2_save(c->backbone, w, "backbone.");
    r = r || nn_classifier_write(c, w);
    for (int i = 0; !r && extra_meta && extra_meta[i]; i += 2)
        r = nn_st_writer_meta(w, extra_meta[i], extra_meta[i + 1]);
    r = r || nn_st_writer_save(w, path);
    nn_st_writer_free(w);
    return r ? -1 : 0;
}

static int meta_num(const nn_st *st, const char *path, const char *key, double *v) {
    const char *s = nn_st_meta(st, key);
    char *end;
    if (!s) return nn_set_error("%s: metadata '%s' missing (not an nnmask classifier?)", path, key);
    *v = strtod(s, &end);
    if (end == s || !isfinite(*v)) return nn_set_error("%s: metadata '%s' = '%s' is not a number", path, key, s);
    return 0;
}

nn_classifier *nn_classifier_load(const char *path) {
    nn_st *st = nn_st_open(path);
    if (!st) return NULL;
    nn_classifier *c = NULL;
    nn_mnv2 *m = NULL;
    double alpha, size, units, dropout, thr = 0.5;
    const char *arch = nn_st_meta(st, "arch");
    if (!arch || strcmp(arch, "mobilenetv2-classifier")) {
        nn_set_error("%s: not an nnmask classifier (metadata arch = %s)", path, arch ? arch : "missing");
        goto fail;
    }
    if (meta_num(st, path, "alpha", &alpha) || meta_num(st, path, "input_size", &size) ||
        meta_num(st, path, "head_units", &units) || meta_num(st, path, "dropout", &dropout))
        goto fail;
    if (nn_st_meta(st, "threshold") && meta_num(st, path, "threshold", &thr)) goto fail;
    const char *cls = nn_st_meta(st, "classes");
    cJSON *arr = cls ? cJSON_Parse(cls) : NULL;
    char names[NN_CLF_MAX_CLASSES][64];
    int k = 0;
    if (!arr || !cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 2 ||
        cJSON_GetArraySize(arr) > NN_CLF_MAX_CLASSES) {
        cJSON_Delete(arr);
        nn_set_error("%s: metadata 'classes' must be a JSON array of 2..%d names", path, NN_CLF_MAX_CLASSES);
        goto fail;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it)) break;
        snprintf(names[k++], 64, "%s", it->valuestring);
    }
    int bad = k != cJSON_GetArraySize(arr);
    cJSON_Delete(arr);
    if (bad) {
        nn_set_error("%s: metadata 'classes' must hold strings", path);
        goto fail;
    }
    if (units < 1 || units > 65536 || !(dropout >= 0 && dropout < 1)) {
        nn_set_error("%s: bad head metadata (head_units %g, dropout %g)", path, units, dropout);
        goto fail;
    }
    m = nn_mnv2_new((float)alpha, (int)size, 0);
    if (!m) goto fail;
    if (nn_mnv2_load(m, st, "backbone.")) goto fail;
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    c = nn_classifier_new(m, k, (const char(*)[64])names, (int)units, (float)dropout, &rng);
    if (!c) goto fail;
    m = NULL;
    int64_t s1[2] = {c->feat, c->head_units}, b1[1] = {c->head_units};
    int64_t s2[2] = {c->head_units, c->outs}, b2[1] = {c->outs};
    if (nn_st_read_f32(st, "head.fc1.weight", c->fc1_w, 2, s1) ||
        nn_st_read_f32(st, "head.fc1.bias", c->fc1_b, 1, b1) ||
        nn_st_read_f32(st, "head.fc2.weight", c->fc2_w, 2, s2) ||
        nn_st_read_f32(st, "head.fc2.bias", c->fc2_b, 1, b2)) {
        char e[1024];
        snprintf(e, sizeof e, "%s", nn_error());
        nn_set_error("%s: %s", path, e);
        goto fail;
    }
    c->threshold = (float)thr;
    const char *rule = nn_st_meta(st, "threshold_rule");
    snprintf(c->threshold_rule, sizeof c->threshold_rule, "%s", rule ? rule : "fixed");
    nn_st_close(st);
    return c;
fail:
    nn_mnv2_free(m);
    nn_classifier_free(c);
    nn_st_close(st);
    return NULL;
}

int nn_classifier_prepare(nn_classifier *c, int max_batch) {
    if (max_batch < 1) max_batch = 1;
    if (c->max_batch >= max_batch && c->x) return nn_mnv2_prepare_infer(c->backbone, c->max_batch);
    free(c->x);
    free(c->pooled);
    free(c->h);
    free(c->logits);
    size_t S = (size_t)c->input_size;
    c->x = malloc((size_t)max_batch * S * S * 3 * sizeof(float));
    c->pooled = malloc((size_t)max_batch * c->feat * sizeof(float));
    c->h = malloc((size_t)max_batch * c->head_units * sizeof(float));
    c->logits = malloc((size_t)max_batch * c->n_classes * sizeof(float));
    if (!c->x || !c->pooled || !c->h || !c->logits) return nn_set_error("classifier: out of memory");
    c->max_batch = max_batch;
    return nn_mnv2_prepare_infer(c->backbone, max_batch);
}

void nn_classifier_release_params(nn_classifier *c) {
    if (c && c->backbone) nn_mnv2_release_params(c->backbone);
}

static void logits_to_probs(const nn_classifier *c, const float *logits, int n, float *probs) {
    for (int i = 0; i < n; i++) {
        float *p = probs + (size_t)i * c->n_classes;
        const float *z = logits + (size_t)i * c->outs;
        if (c->outs == 1) {
            float s = z[0] >= 0 ? 1.0f / (1.0f + expf(-z[0])) : expf(z[0]) / (1.0f + expf(z[0]));
            p[0] = 1.0f - s;
            p[1] = s;
        } else {
            float mx = z[0], sum = 0;
            for (int k = 1; k < c->outs; k++) mx = fmaxf(mx, z[k]);
            for (int k = 0; k < c->outs; k++) sum += p[k] = expf(z[k] - mx);
            for (int k = 0; k < c->outs; k++) p[k] /= sum;
        }
    }
}

void nn_classifier_head_probs(nn_classifier *c, const float *pooled, int n, float *probs) {
    if (c->max_batch < 1) nn_fatal("nn_classifier_head_probs: call nn_classifier_prepare first");
    for (int i0 = 0; i0 < n; i0 += c->max_batch) {
        int b = n - i0 < c->max_batch ? n - i0 : c->max_batch;
        nn_tensor in = nn_tensor_make((float *)pooled + (size_t)i0 * c->feat, b, 1, 1, c->feat);
        nn_tensor h = nn_tensor_make(c->h, b, 1, 1, c->head_units);
        nn_tensor z = nn_tensor_make(c->logits, b, 1, 1, c->outs);
        nn_dense_forward(&h, &in, c->fc1_w, c->fc1_b, NN_ACT_RELU);
        nn_dense_forward(&z, &h, c->fc2_w, c->fc2_b, NN_ACT_NONE);
        logits_to_probs(c, c->logits, b, probs + (size_t)i0 * c->n_classes);
    }
}

void nn_classifier_predict_floats(nn_classifier *c, const float *x, int n, float *probs) {
    if (c->max_batch < 1) nn_fatal("nn_classifier_predict_floats: call nn_classifier_prepare first");
    size_t per = (size_t)c->input_size * c->input_size * 3;
    for (int i0 = 0; i0 < n; i0 += c->max_batch) {
        int b = n - i0 < c->max_batch ? n - i0 : c->max_batch;
        nn_mnv2_infer(c->backbone, x + (size_t)i0 * per, b, c->pooled, NULL, NULL);
        nn_classifier_head_probs(c, c->pooled, b, probs + (size_t)i0 * c->n_classes);
    }
}

int nn_classifier_predict(nn_classifier *c, const nn_image *imgs, int n, float *probs) {
    if (c->max_batch < 1 && nn_classifier_prepare(c, n < 32 ? n : 32)) return -1;
    int S = c->input_size;
    size_t per = (size_t)S * S * 3;
    for (int i0 = 0; i0 < n; i0 += c->max_batch) {
        int b = n - i0 < c->max_batch ? n - i0 : c->max_batch;
        for (int i = 0; i < b; i++) {
            const nn_image *im = &imgs[i0 + i];
            if (im->w == S && im->h == S) {
                nn_image_to_floats(c->x + i * per, im, 1.0f / 127.5f, -1.0f);
                continue;
            }
            nn_image r = {0};
            if (nn_image_resize(&r, im, S, S)) return -1;
            nn_image_to_floats(c->x + i * per, &r, 1.0f / 127.5f, -1.0f);
            nn_image_free(&r);
        }
        nn_mnv2_infer(c->backbone, c->x, b, c->pooled, NULL, NULL);
        nn_classifier_head_probs(c, c->pooled, b, probs + (size_t)i0 * c->n_classes);
    }
    return 0;
}

int nn_classifier_decide(const nn_classifier *c, const float *probs) {
    if (c->n_classes == 2) return probs[1] >= c->threshold ? 1 : 0;
    int best = 0;
    for (int k = 1; k < c->n_classes; k++)
        if (probs[k] > probs[best]) best = k;
    return best;
}

void nn_classifier_rule_text(const nn_classifier *c, char *buf, size_t cap) {
    if (c->n_classes == 2)
        snprintf(buf, cap, "%s if P(%s) >= %.4f, else %s", c->classes[1], c->classes[1],
                 (double)c->threshold, c->classes[0]);
    else
        snprintf(buf, cap, "argmax of the softmax over the %d classes", c->n_classes);
}

/* ---- head training ---- */

int nn_head_ws_init(nn_head_ws *ws, const nn_classifier *c, int max_batch) {
    memset(ws, 0, sizeof *ws);
    size_t B = (size_t)max_batch, U = (size_t)c->head_units, O = (size_t)c->outs;
    ws->max_batch = max_batch;
    ws->h = malloc(B * U * sizeof(float));
    ws->hd = malloc(B * U * sizeof(float));
    ws->mask = malloc(B * U * sizeof(float));
    ws->dhd = malloc(B * U * sizeof(float));
    ws->dh = malloc(B * U * sizeof(float));
    ws->logits = malloc(B * O * sizeof(float));
    ws->dlogits = malloc(B * O * sizeof(float));
    ws->targets = malloc(B * sizeof(float));
    if (!ws->h || !ws->hd || !ws->mask || !ws->dhd || !ws->dh || !ws->logits || !ws->dlogits || !ws->targets) {
        nn_head_ws_free(ws);
        return nn_set_error("classifier: out of memory for the head workspace");
    }
    return 0;
}

void nn_head_ws_free(nn_head_ws *ws) {
    free(ws->h);
    free(ws->hd);
    free(ws->mask);
    free(ws->dhd);
    free(ws->dh);
    free(ws->logits);
    free(ws->dlogits);
    free(ws->targets);
    memset(ws, 0, sizeof *ws);
}

float nn_head_train_step(nn_classifier *c, nn_head_ws *ws, const float *pooled, int n,
                         const int *labels, const float *weights, int training, nn_rng *rng,
                         float *grads, float *dpooled, float *probs) {
    if (n > ws->max_batch) nn_fatal("nn_head_train_step: batch %d > workspace %d", n, ws->max_batch);
    const int U = c->head_units, O = c->outs, F = c->feat;
    nn_tensor in = nn_tensor_make((float *)pooled, n, 1, 1, F);
    nn_tensor h = nn_tensor_make(ws->h, n, 1, 1, U);
    nn_tensor hd = nn_tensor_make(ws->hd, n, 1, 1, U);
    nn_tensor z = nn_tensor_make(ws->logits, n, 1, 1, O);
    nn_dense_forward(&h, &in, c->fc1_w, c->fc1_b, NN_ACT_RELU);
    nn_dropout_forward(&hd, ws->mask, &h, c->dropout, training, rng);
    nn_dense_forward(&z, &hd, c->fc2_w, c->fc2_b, NN_ACT_NONE);
    float loss;
    if (O == 1) {
        for (int i = 0; i < n; i++) ws->targets[i] = (float)labels[i];
        loss = nn_bce_logits(ws->dlogits, ws->logits, ws->targets, weights, n);
    } else {
        loss = nn_softmax_xent(ws->dlogits, NULL, ws->logits, labels, weights, n, O);
    }
    if (probs) logits_to_probs(c, ws->logits, n, probs);
    if (!grads) return loss;
    float *g1w = grads, *g1b = g1w + (size_t)F * U, *g2w = g1b + U, *g2b = g2w + (size_t)U * O;
    nn_tensor dz = nn_tensor_make(ws->dlogits, n, 1, 1, O);
    nn_tensor dhd = nn_tensor_make(ws->dhd, n, 1, 1, U);
    nn_tensor dh = nn_tensor_make(ws->dh, n, 1, 1, U);
    nn_dense_backward(&dhd, g2w, g2b, &dz, &hd, c->fc2_w);
    nn_dropout_backward(&dh, &dhd, ws->mask);
    nn_relu_backward(&dh, &dh, &h);
    nn_tensor dp = nn_tensor_make(dpooled, n, 1, 1, F);
    nn_dense_backward(dpooled ? &dp : NULL, g1w, g1b, &dh, &in, c->fc1_w);
    return loss;
}

/* ---- random backbone ---- */

int nn_mnv2_init_random_weights(nn_mnv2 *m, nn_rng *rng, const char *tmp_dir) {
    /* Names and shapes come from the backbone's own writer: save it, then
     * write a twin file with random values and load that. */
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s/.nnmask-init-%d-a.safetensors", tmp_dir ? tmp_dir : "/tmp", (int)getpid());
    snprintf(p2, sizeof p2, "%s/.nnmask-init-%d-b.safetensors", tmp_dir ? tmp_dir : "/tmp", (int)getpid());
    nn_st_writer *w = nn_st_writer_new();
    if (!w) return nn_set_error("out of memory");
    int r = nn_mnv2_save(m, w, "") || nn_st_writer_save(w, p1);
    nn_st_writer_free(w);
    if (r) return -1;
    nn_st *st = nn_st_open(p1);
    unlink(p1);
    if (!st) return -1;
    w = nn_st_writer_new();
    int n = nn_st_count(st);
    float **bufs = calloc((size_t)n + 1, sizeof *bufs);
    if (!w || !bufs) nn_fatal("out of memory");
    for (int i = 0; i < n && !r; i++) {
        const char *name = nn_st_name(st, i), *dtype;
        int nd;
        int64_t shape[NN_ST_MAX_DIMS];
        nn_st_info(st, i, &dtype, &nd, shape);
        size_t cnt = 1;
        for (int d = 0; d < nd; d++) cnt *= (size_t)shape[d];
        bufs[i] = malloc((cnt + 1) * sizeof(float));
        if (!bufs[i]) nn_fatal("out of memory");
        size_t L = strlen(name);
        int is = 0;
#define ENDS(s) (L >= strlen(s) && !strcmp(name + L - strlen(s), s))
        /* residual blocks start as identities (projection gamma 0), so a deep
         * random network keeps well-scaled activations */
        static const int residual[] = {2, 4, 5, 7, 8, 9, 11, 12, 14, 15};
        int res_proj = 0;
        for (size_t q = 0; q < sizeof residual / sizeof *residual; q++) {
            char nm[64];
            snprintf(nm, sizeof nm, "block%d.project.bn.gamma", residual[q]);
            if (!strcmp(name, nm)) res_proj = 1;
        }
        if (res_proj) is = 0;
        else if (ENDS(".gamma") || ENDS(".var")) is = 1;
        else if (ENDS(".beta") || ENDS(".mean") || ENDS(".bias")) is = 0;
        else is = 2;
#undef ENDS
        if (is == 2) {
            /* He normal: fan_in = all dims but the output channel (depthwise: kh*kw) */
            size_t fan_in = nd == 3 ? (size_t)(shape[0] * shape[1]) : cnt / (size_t)shape[nd - 1];
            int linear = strstr(name, ".project.") != NULL; /* no ReLU after it */
            float sd = sqrtf((linear ? 1.0f : 2.0f) / (float)fan_in);
            for (size_t j = 0; j < cnt; j++) bufs[i][j] = nn_rng_normal(rng) * sd;
        } else {
            for (size_t j = 0; j < cnt; j++) bufs[i][j] = (float)is;
        }
        r = nn_st_writer_add_f32(w, name, bufs[i], nd, shape);
    }
    for (int i = 0; i < nn_st_meta_count(st) && !r; i++)
        r = nn_st_writer_meta(w, nn_st_meta_key(st, i), nn_st_meta(st, nn_st_meta_key(st, i)));
    r = r || nn_st_writer_save(w, p2);
    nn_st_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    nn_st_close(st);
    if (r) return -1;
    st = nn_st_open(p2);
    unlink(p2);
    if (!st) return -1;
    r = nn_mnv2_load(m, st, "");
    nn_st_close(st);
    return r;
}
