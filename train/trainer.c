/* trainer.c — the training loop of nnmask-train (input pipeline threads,
 * transfer learning, schedules, checkpoints/resume) and the evaluation outputs. */

#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "augment.h"
#include "metrics.h"
#include "plot.h"

/* MODE_FEATURES_AUG: frozen backbone, the features of train.aug_copies
 * augmented copies of every training image computed once; each epoch draws
 * one copy per image (the head then trains in milliseconds per epoch). */
enum { MODE_FEATURES, MODE_FROZEN_AUG, MODE_FINETUNE, MODE_FEATURES_AUG };

typedef struct {
    int epoch;
    float train_loss, train_acc, val_loss, val_acc, lr;
    double seconds;
} hist_row;

typedef struct {
    const nn_config *c;
    nn_dataset ds;
    int *idx[3], n[3];          /* item indices per split */
    float *item_w;              /* per item class-balance weight */
    nn_classifier *clf;
    int S, B, train_from, mode;
    float *bb_params, *bb_grads;
    size_t bb_n;
    float *head_grads, *hm, *hv, *bm, *bv;
    long step;
    hist_row *hist;
    int n_hist, start_epoch;
    float best_val_loss;
    int best_epoch, bad_epochs;
    float *feat[3];             /* frozen backbone: pooled features per split
                                   (train, MODE_FEATURES_AUG: [copies][n][feat]) */
    char cfg_text[65536];
    char out[NN_CFG_PATH];
} trainer;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void path_in(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* Closes f, a memstream on *buf / *len, writes its text to dir/name
 * atomically and frees the buffer. */
static int save_memstream(FILE *f, char **buf, size_t *len, const char *dir, const char *name) {
    fclose(f);
    char p[1200];
    path_in(p, sizeof p, dir, name);
    int r = nn_file_write_atomic(p, *buf, *len);
    free(*buf);
    *buf = NULL;
    return r;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

/* ===== evaluation ====================================================== */

int nn_eval_probs(nn_classifier *clf, const nn_dataset *ds, float *probs, int *ok, int shrink) {
    int S = clf->input_size, K = clf->n_classes;
    int B = clf->max_batch > 0 ? clf->max_batch : 32;
    if (nn_classifier_prepare(clf, B)) return -1;
    B = clf->max_batch;
    size_t per = (size_t)S * S * 3;
    float *x = malloc((size_t)B * per * sizeof(float));
    int *map = malloc((size_t)B * sizeof(int));
    if (!x || !map) nn_fatal("out of memory");
    int failed = 0;
    float *p = malloc((size_t)B * K * sizeof(float));
    if (!p) nn_fatal("out of memory");
    for (int i0 = 0; i0 < ds->n;) {
        int b = 0;
        for (; i0 < ds->n && b < B; i0++) {
            const nn_item *it = &ds->items[i0];
            nn_image im = {0};
            if (nn_item_eval_image(it, &im, S)) {
                fprintf(stderr, "nnmask: %s; skipped\n", nn_error());
                ok[i0] = 0;
                for (int k = 0; k < K; k++) probs[(size_t)i0 * K + k] = NAN;
                failed++;
                continue;
            }
            if (shrink > 0 && shrink < S) {
                nn_image small = {0}, back = {0};
                if (nn_image_resize(&small, &im, shrink, shrink) || nn_image_resize(&back, &small, S, S))
                    nn_fatal("%s", nn_error());
                nn_image_free(&small);
                nn_image_free(&im);
                im = back;
            }
            nn_image_to_floats(x + (size_t)b * per, &im, 1.0f / 127.5f, -1.0f);
            nn_image_free(&im);
            ok[i0] = 1;
            map[b++] = i0;
        }
        if (!b) continue;
        nn_classifier_predict_floats(clf, x, b, p);
        for (int j = 0; j < b; j++) memcpy(probs + (size_t)map[j] * K, p + (size_t)j * K, K * sizeof(float));
    }
    free(p);
    free(x);
    free(map);
    return failed;
}

static int write_text(const char *path, const char *text) {
    return nn_file_write_atomic(path, text, strlen(text));
}

/* Short side of an annotated face box in photo pixels (0 for folder images). */
static float face_side(const nn_item *it) {
    return it->has_box ? fminf(it->box[2] - it->box[0], it->box[3] - it->box[1]) : 0.0f;
}

/* metrics over subset (source -1 = all; annotated faces with a short side in
 * [lo, hi) when lo > 0 or hi finite); returns the count, fills m when > 0
 * (caller frees) */
static int subset_metrics_size(nn_metrics *m, const nn_classifier *clf, const nn_dataset *ds, const float *probs,
                               const int *ok, int split_mask, int source, float lo, float hi);
static int subset_metrics(nn_metrics *m, const nn_classifier *clf, const nn_dataset *ds, const float *probs,
                          const int *ok, int split_mask, int source) {
    return subset_metrics_size(m, clf, ds, probs, ok, split_mask, source, 0.0f, INFINITY);
}

static int subset_metrics_size(nn_metrics *m, const nn_classifier *clf, const nn_dataset *ds, const float *probs,
                               const int *ok, int split_mask, int source, float lo, float hi) {
    int K = clf->n_classes, n = 0;
    float *p = malloc(((size_t)ds->n + 1) * K * sizeof(float));
    int *l = malloc(((size_t)ds->n + 1) * sizeof(int));
    if (!p || !l) nn_fatal("out of memory");
    for (int i = 0; i < ds->n; i++) {
        const nn_item *it = &ds->items[i];
        if (!(split_mask & (1 << it->split)) || (ok && !ok[i])) continue;
        if (source >= 0 && it->source != source) continue;
        if ((lo > 0 || hi < INFINITY) && !(it->has_box && face_side(it) >= lo && face_side(it) < hi)) continue;
        memcpy(p + (size_t)n * K, probs + (size_t)i * K, K * sizeof(float));
        l[n++] = it->label;
    }
    if (n) nn_metrics_compute(m, p, l, n, K, clf->threshold);
    free(p);
    free(l);
    return n;
}

/* Annotated faces of source s by size (short side of the box, photo px):
 * "faces_min<NN_EVAL_MIN_FACE>px" = full metrics of the faces at least that
 * big, "by_size" = counts, accuracy and recall per class in size bands. */
static void size_metrics(FILE *rf, cJSON *sj, const nn_classifier *clf, const nn_dataset *ds, const float *probs,
                         const int *ok, int split_mask, int s, const char *title) {
    const char(*classes)[64] = (const char(*)[64])clf->classes;
    int boxes = 0;
    for (int i = 0; i < ds->n && !boxes; i++)
        boxes = ds->items[i].source == s && ds->items[i].has_box && (split_mask & (1 << ds->items[i].split));
    if (!boxes) return;
    nn_metrics m;
    char key[64], t2[512];
    snprintf(key, sizeof key, "faces_min%dpx", NN_EVAL_MIN_FACE);
    if (subset_metrics_size(&m, clf, ds, probs, ok, split_mask, s, (float)NN_EVAL_MIN_FACE, INFINITY)) {
        cJSON_AddItemToObject(sj, key, nn_metrics_json(&m, classes));
        snprintf(t2, sizeof t2, "\n\n%s, source '%s', faces >= %d px: %d faces", title, ds->sources[s], NN_EVAL_MIN_FACE,
                 m.n);
        nn_metrics_report(rf, &m, classes, t2);
        nn_metrics_free(&m);
    }
    static const float band[] = {0, 16, 24, 40, 60, 100, INFINITY};
    int nb = (int)(sizeof band / sizeof band[0]) - 1;
    cJSON *arr = cJSON_AddArrayToObject(sj, "by_size");
    fprintf(rf, "\n%s, source '%s', by face size (short side of the box, px):\n  %-10s %6s %9s", title,
            ds->sources[s], "size", "faces", "accuracy");
    for (int k = 0; k < clf->n_classes; k++) fprintf(rf, "  recall %-14.14s (n)     ", classes[k]);
    fprintf(rf, "\n");
    for (int b = 0; b < nb; b++) {
        if (!subset_metrics_size(&m, clf, ds, probs, ok, split_mask, s, band[b], band[b + 1])) continue;
        char nm[32];
        if (isinf(band[b + 1])) snprintf(nm, sizeof nm, ">=%d", (int)band[b]);
        else snprintf(nm, sizeof nm, "%d-%d", (int)band[b], (int)band[b + 1]);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "size", nm);
        cJSON_AddNumberToObject(o, "n", m.n);
        cJSON_AddNumberToObject(o, "accuracy", m.accuracy);
        cJSON *rc = cJSON_AddObjectToObject(o, "recall");
        fprintf(rf, "  %-10s %6d %8.2f%%", nm, m.n, 100 * m.accuracy);
        for (int k = 0; k < clf->n_classes; k++) {
            if (m.support[k]) {
                cJSON_AddNumberToObject(rc, classes[k], m.recall[k]);
                fprintf(rf, "  %20.2f%% (%4d)", 100 * m.recall[k], m.support[k]);
            } else {
                cJSON_AddNullToObject(rc, classes[k]);
                fprintf(rf, "  %21s (%4d)", "-", 0);
            }
        }
        fprintf(rf, "\n");
        cJSON_AddItemToArray(arr, o);
        nn_metrics_free(&m);
    }
}

int nn_eval_outputs(const char *out_dir, const nn_classifier *clf, const nn_dataset *ds,
                    const float *probs, const int *ok, int split_mask, int plots,
                    const char *title, cJSON *extra, cJSON **json, FILE *print) {
    const char(*classes)[64] = (const char(*)[64])clf->classes;
    nn_metrics m;
    if (!subset_metrics(&m, clf, ds, probs, ok, split_mask, -1)) {
        if (extra) cJSON_Delete(extra);
        return nn_set_error("no images to evaluate");
    }
    cJSON *o = nn_metrics_json(&m, classes);
    char rule[256];
    nn_classifier_rule_text(clf, rule, sizeof rule);
    cJSON_AddStringToObject(o, "data", title);
    cJSON_AddStringToObject(o, "decision", rule);
    char *rep = NULL;
    size_t replen = 0;
    FILE *rf = open_memstream(&rep, &replen);
    char t2[512];
    snprintf(t2, sizeof t2, "%s: %d images, decision: %s", title, m.n, rule);
    nn_metrics_report(rf, &m, classes, t2);
    /* per source */
    int used[64] = {0}, n_used = 0;
    for (int i = 0; i < ds->n; i++)
        if ((split_mask & (1 << ds->items[i].split)) && (!ok || ok[i]) && ds->items[i].source < 64 &&
            !used[ds->items[i].source]) {
            used[ds->items[i].source] = 1;
            n_used++;
        }
    int rc = 0, any_box = 0;
    char path[1200];
    for (int i = 0; i < ds->n && !any_box; i++)
        any_box = ds->items[i].has_box && (split_mask & (1 << ds->items[i].split));
    if (n_used > 1 || any_box) { /* annotated faces: also their metrics by size */
        cJSON *srcs = cJSON_AddObjectToObject(o, "sources");
        for (int s = 0; s < ds->n_sources && s < 64; s++) {
            if (!used[s]) continue;
            nn_metrics ms;
            if (!subset_metrics(&ms, clf, ds, probs, ok, split_mask, s)) continue;
            cJSON *sj = nn_metrics_json(&ms, classes);
            cJSON_AddItemToObject(srcs, ds->sources[s], sj);
            snprintf(t2, sizeof t2, "\n\n%s, source '%s': %d images", title, ds->sources[s], ms.n);
            nn_metrics_report(rf, &ms, classes, t2);
            size_metrics(rf, sj, clf, ds, probs, ok, split_mask, s, title);
            if (plots && out_dir) {
                char nm[300], tt[300];
                snprintf(nm, sizeof nm, "confusion_%s.png", ds->sources[s]);
                snprintf(tt, sizeof tt, "Confusion matrix: %s (%s)", ds->sources[s], title);
                path_in(path, sizeof path, out_dir, nm);
                if (nn_plot_confusion(path, &ms, classes, tt)) rc = -1;
            }
            nn_metrics_free(&ms);
        }
    }
    fclose(rf);
    if (print) fputs(rep, print);
    if (extra) {
        cJSON *it = extra->child;
        while (it) {
            cJSON *next = it->next;
            cJSON_DetachItemViaPointer(extra, it);
            cJSON_AddItemToObject(o, it->string, it);
            it = next;
        }
        cJSON_Delete(extra);
    }
    if (out_dir) {
        char *js = cJSON_Print(o);
        size_t jl = strlen(js);
        js = realloc(js, jl + 2);
        js[jl] = '\n';
        js[jl + 1] = 0;
        path_in(path, sizeof path, out_dir, "metrics.json");
        if (write_text(path, js)) rc = -1;
        free(js);
        path_in(path, sizeof path, out_dir, "report.txt");
        if (write_text(path, rep)) rc = -1;
        if (plots) {
            char tt[300];
            snprintf(tt, sizeof tt, "Confusion matrix (%s)", title);
            path_in(path, sizeof path, out_dir, "confusion.png");
            if (nn_plot_confusion(path, &m, classes, tt)) rc = -1;
            snprintf(tt, sizeof tt, "ROC curve (%s)", title);
            path_in(path, sizeof path, out_dir, "roc.png");
            if (nn_plot_roc(path, &m, classes, tt)) rc = -1;
        }
    }
    free(rep);
    nn_metrics_free(&m);
    if (json) *json = o;
    else cJSON_Delete(o);
    return rc;
}

/* ===== background batch loader (augmentation threads) ================== */

#define MAX_SLOTS 9

typedef struct {
    trainer *t;
    int epoch, n_order, n_batches, nslots, nth;
    const int *order;
    float *x[MAX_SLOTS];
    int *labels[MAX_SLOTS];
    float *w[MAX_SLOTS];
    int cnt[MAX_SLOTS], ready[MAX_SLOTS];
    int next, consumed, stop, err;
    char errmsg[512];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th[8];
} loader;

static int fill_batch(loader *L, int b, int s) {
    trainer *t = L->t;
    size_t per = (size_t)t->S * t->S * 3;
    int j = 0;
    for (int p = b * t->B; p < (b + 1) * t->B && p < L->n_order; p++, j++) {
        const nn_item *it = &t->ds.items[L->order[p]];
        nn_rng r;
        nn_augment_rng(&r, t->c->seed, L->epoch, p);
        nn_image im = {0};
        if (nn_augment(&im, &it->img, it->ctx, t->S, t->c, &r)) return -1;
        nn_image_to_floats(L->x[s] + (size_t)j * per, &im, 1.0f / 127.5f, -1.0f);
        nn_image_free(&im);
        L->labels[s][j] = it->label;
        L->w[s][j] = t->item_w[L->order[p]];
    }
    L->cnt[s] = j;
    return 0;
}

static void *loader_main(void *arg) {
    loader *L = arg;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (L->stop || L->next >= L->n_batches) break;
        int b = L->next++;
        while (!L->stop && L->consumed < b - L->nslots + 1) pthread_cond_wait(&L->cv, &L->mu);
        if (L->stop) break;
        pthread_mutex_unlock(&L->mu);
        int s = b % L->nslots;
        int r = fill_batch(L, b, s);
        pthread_mutex_lock(&L->mu);
        if (r) {
            L->err = 1;
            snprintf(L->errmsg, sizeof L->errmsg, "augmentation: %s", nn_error());
        }
        L->ready[s] = b;
        pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static int loader_start(loader *L, trainer *t, int epoch, const int *order, int n_order) {
    memset(L, 0, sizeof *L);
    L->t = t;
    L->epoch = epoch;
    L->order = order;
    L->n_order = n_order;
    L->n_batches = (n_order + t->B - 1) / t->B;
    L->nth = t->c->loader_threads < 1 ? 1 : t->c->loader_threads > 8 ? 8 : t->c->loader_threads;
    L->nslots = L->nth + 1;
    size_t per = (size_t)t->S * t->S * 3;
    for (int s = 0; s < L->nslots; s++) {
        L->x[s] = malloc((size_t)t->B * per * sizeof(float));
        L->labels[s] = malloc((size_t)t->B * sizeof(int));
        L->w[s] = malloc((size_t)t->B * sizeof(float));
        if (!L->x[s] || !L->labels[s] || !L->w[s]) nn_fatal("out of memory for the batch buffers");
        L->ready[s] = -1;
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    for (int i = 0; i < L->nth; i++)
        if (pthread_create(&L->th[i], NULL, loader_main, L)) nn_fatal("cannot start a loader thread");
    return 0;
}

/* Waits for batch b; returns its slot, -1 on an augmentation error. */
static int loader_get(loader *L, int b) {
    int s = b % L->nslots;
    pthread_mutex_lock(&L->mu);
    while (L->ready[s] != b && !L->err) pthread_cond_wait(&L->cv, &L->mu);
    int err = L->err;
    pthread_mutex_unlock(&L->mu);
    if (err) {
        nn_set_error("%s", L->errmsg);
        return -1;
    }
    return s;
}

static void loader_release(loader *L, int b) {
    pthread_mutex_lock(&L->mu);
    L->ready[b % L->nslots] = -1;
    L->consumed = b + 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
}

static void loader_stop(loader *L) {
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->nth; i++) pthread_join(L->th[i], NULL);
    for (int s = 0; s < L->nslots; s++) {
        free(L->x[s]);
        free(L->labels[s]);
        free(L->w[s]);
    }
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
}

/* ===== pieces of the trainer ============================================ */

static float lr_at(const trainer *t, long step, int epoch, long steps_per_epoch) {
    const nn_config *c = t->c;
    float lr = c->lr;
    switch (c->schedule) {
    case NN_SCHED_CONSTANT: break;
    case NN_SCHED_INVERSE_TIME: lr = c->lr / (1.0f + c->decay * (float)step); break;
    case NN_SCHED_COSINE: {
        double total = (double)c->epochs * steps_per_epoch;
        double f = total > 0 ? fmin(1.0, step / total) : 1.0;
        lr = (float)(c->min_lr + 0.5 * (c->lr - c->min_lr) * (1 + cos(M_PI * f)));
        break;
    }
    case NN_SCHED_STEP: lr = c->lr * powf(c->step_gamma, (float)(epoch / c->step_epochs)); break;
    }
    long warm = (long)c->warmup_epochs * steps_per_epoch;
    if (warm > 0 && step < warm) lr *= (float)(step + 1) / (float)warm;
    return lr;
}

static void opt_step(trainer *t, float lr) {
    const nn_config *c = t->c;
    if (c->optimizer == NN_OPT_ADAM) {
        nn_adam_step(t->clf->params, t->head_grads, t->hm, t->hv, t->clf->n_params, lr, c->beta1, c->beta2,
                     c->eps, c->weight_decay, t->step);
        if (t->bb_n)
            nn_adam_step(t->bb_params, t->bb_grads, t->bm, t->bv, t->bb_n, lr, c->beta1, c->beta2, c->eps,
                         c->weight_decay, t->step);
    } else {
        nn_sgd_step(t->clf->params, t->head_grads, t->hm, t->clf->n_params, lr, c->momentum, c->weight_decay,
                    c->nesterov);
        if (t->bb_n)
            nn_sgd_step(t->bb_params, t->bb_grads, t->bm, t->bb_n, lr, c->momentum, c->weight_decay, c->nesterov);
    }
}

/* Pooled features of the items idx[0..n) with the (frozen) backbone. */
static int compute_features(trainer *t, const int *idx, int n, float *feat, const char *what) {
    size_t per = (size_t)t->S * t->S * 3;
    nn_classifier *clf = t->clf;
    float *x = malloc((size_t)t->B * per * sizeof(float));
    if (!x) nn_fatal("out of memory");
    double t0 = now_s();
    for (int i0 = 0; i0 < n; i0 += t->B) {
        int b = n - i0 < t->B ? n - i0 : t->B;
        for (int j = 0; j < b; j++) {
            nn_image im = {0};
            if (nn_item_eval_image(&t->ds.items[idx[i0 + j]], &im, t->S)) {
                free(x);
                return -1;
            }
            nn_image_to_floats(x + (size_t)j * per, &im, 1.0f / 127.5f, -1.0f);
            nn_image_free(&im);
        }
        nn_mnv2_infer(clf->backbone, x, b, feat + (size_t)i0 * clf->feat, NULL, NULL);
        if (isatty(2)) fprintf(stderr, "\r  %s features %d/%d", what, i0 + b, n);
    }
    if (isatty(2)) fprintf(stderr, "\r\033[K");
    printf("  %s: backbone features of %d images in %.1f s\n", what, n, now_s() - t0);
    fflush(stdout);
    free(x);
    return 0;
}

/* Probabilities of split sp with the current weights. */
static int split_probs(trainer *t, int sp, float *probs) {
    int n = t->n[sp];
    if (!n) return 0;
    nn_classifier *clf = t->clf;
    if (t->train_from == NN_MNV2_STAGES) {
        nn_classifier_head_probs(clf, t->feat[sp], n, probs);
        return 0;
    }
    float *feat = malloc((size_t)n * clf->feat * sizeof(float));
    if (!feat) nn_fatal("out of memory");
    if (nn_mnv2_prepare_infer(clf->backbone, t->B) || compute_features(t, t->idx[sp], n, feat, "validation")) {
        free(feat);
        return -1;
    }
    nn_classifier_head_probs(clf, feat, n, probs);
    free(feat);
    return 0;
}

static void history_json(const trainer *t, char *buf, size_t cap) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < t->n_hist; i++) {
        const hist_row *h = &t->hist[i];
        cJSON *r = cJSON_CreateArray();
        char s[64];
        double v[6] = {h->epoch, h->train_loss, h->train_acc, h->val_loss, h->val_acc, h->lr};
        for (int k = 0; k < 6; k++) {
            snprintf(s, sizeof s, "%.9g", v[k]);
            cJSON_AddItemToArray(r, cJSON_CreateString(s));
        }
        snprintf(s, sizeof s, "%.3f", h->seconds);
        cJSON_AddItemToArray(r, cJSON_CreateString(s));
        cJSON_AddItemToArray(a, r);
    }
    char *p = cJSON_PrintUnformatted(a);
    snprintf(buf, cap, "%s", p);
    free(p);
    cJSON_Delete(a);
}

static int parse_history(trainer *t, const char *js) {
    cJSON *a = cJSON_Parse(js);
    if (!a || !cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return -1;
    }
    int n = cJSON_GetArraySize(a);
    t->hist = realloc(t->hist, ((size_t)n + t->c->epochs + 1) * sizeof *t->hist);
    t->n_hist = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, a) {
        double v[7] = {0};
        for (int k = 0; k < 7; k++) {
            const cJSON *e = cJSON_GetArrayItem(r, k);
            v[k] = e && cJSON_IsString(e) ? strtod(e->valuestring, NULL) : NAN;
        }
        hist_row *h = &t->hist[t->n_hist++];
        h->epoch = (int)v[0];
        h->train_loss = (float)v[1];
        h->train_acc = (float)v[2];
        h->val_loss = (float)v[3];
        h->val_acc = (float)v[4];
        h->lr = (float)v[5];
        h->seconds = v[6];
    }
    cJSON_Delete(a);
    return 0;
}

static int write_history_csv(const trainer *t) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n");
    for (int i = 0; i < t->n_hist; i++) {
        const hist_row *h = &t->hist[i];
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.1f\n", h->epoch, h->train_loss, h->train_acc, h->val_loss,
                h->val_acc, h->lr, h->seconds);
    }
    return save_memstream(f, &buf, &len, t->out, "history.csv");
}

static int write_curves(const trainer *t) {
    int n = t->n_hist;
    float *v = malloc(((size_t)n + 1) * 4 * sizeof(float));
    if (!v) nn_fatal("out of memory");
    for (int i = 0; i < n; i++) {
        v[i] = t->hist[i].train_loss;
        v[n + i] = t->hist[i].val_loss;
        v[2 * n + i] = t->hist[i].train_acc;
        v[3 * n + i] = t->hist[i].val_acc;
    }
    char p[1200];
    path_in(p, sizeof p, t->out, "curves.png");
    int r = nn_plot_curves(p, n, v, v + n, v + 2 * n, v + 3 * n, "Training curves");
    free(v);
    return r;
}

static const char *CKPT = "checkpoint.safetensors";

static int save_checkpoint(trainer *t, int epochs_done) {
    nn_st_writer *w = nn_st_writer_new();
    if (!w) return nn_set_error("out of memory");
    int64_t sh[1] = {(int64_t)t->clf->n_params}, sb[1] = {(int64_t)t->bb_n};
    int r = nn_classifier_write(t->clf, w);
    r = r || nn_st_writer_add_f32(w, "opt.head.m", t->hm, 1, sh);
    if (t->c->optimizer == NN_OPT_ADAM) r = r || nn_st_writer_add_f32(w, "opt.head.v", t->hv, 1, sh);
    if (t->bb_n) {
        r = r || nn_st_writer_add_f32(w, "backbone.trainable", t->bb_params, 1, sb);
        r = r || nn_st_writer_add_f32(w, "opt.backbone.m", t->bm, 1, sb);
        if (t->c->optimizer == NN_OPT_ADAM) r = r || nn_st_writer_add_f32(w, "opt.backbone.v", t->bv, 1, sb);
    }
    char s[64];
    snprintf(s, sizeof s, "%d", epochs_done);
    r = r || nn_st_writer_meta(w, "ckpt.epoch", s);
    snprintf(s, sizeof s, "%ld", t->step);
    r = r || nn_st_writer_meta(w, "ckpt.step", s);
    snprintf(s, sizeof s, "%.9g", t->best_val_loss);
    r = r || nn_st_writer_meta(w, "ckpt.best_val_loss", s);
    snprintf(s, sizeof s, "%d", t->best_epoch);
    r = r || nn_st_writer_meta(w, "ckpt.best_epoch", s);
    snprintf(s, sizeof s, "%d", t->bad_epochs);
    r = r || nn_st_writer_meta(w, "ckpt.bad_epochs", s);
    snprintf(s, sizeof s, "%d", t->train_from);
    r = r || nn_st_writer_meta(w, "ckpt.train_from", s);
    /* the random stream of the next epoch (each epoch's stream is derived
     * from (seed, epoch), so this is what a resumed run continues with) */
    nn_rng nr;
    nn_augment_rng(&nr, t->c->seed, epochs_done, -1);
    snprintf(s, sizeof s, "%016llx%016llx", (unsigned long long)nr.s[0], (unsigned long long)nr.s[1]);
    r = r || nn_st_writer_meta(w, "ckpt.rng", s);
    static char hj[1 << 20];
    history_json(t, hj, sizeof hj);
    r = r || nn_st_writer_meta(w, "ckpt.history", hj);
    r = r || nn_st_writer_meta(w, "ckpt.config", t->cfg_text);
    char p[1200];
    path_in(p, sizeof p, t->out, CKPT);
    r = r || nn_st_writer_save(w, p);
    nn_st_writer_free(w);
    return r ? -1 : 0;
}

static int meta_int(const nn_st *st, const char *k, long *v) {
    const char *s = nn_st_meta(st, k);
    if (!s) return -1;
    char *e;
    *v = strtol(s, &e, 10);
    return e == s ? -1 : 0;
}

/* Returns 1 loaded, 0 no checkpoint, -1 error. */
static int load_checkpoint(trainer *t) {
    char p[1200];
    path_in(p, sizeof p, t->out, CKPT);
    if (access(p, F_OK) != 0) return 0;
    nn_st *st = nn_st_open(p);
    if (!st) return -1;
    int rc = -1;
    long ep, step, be, bad, tf;
    const char *cfg = nn_st_meta(st, "ckpt.config");
    if (meta_int(st, "ckpt.epoch", &ep) || meta_int(st, "ckpt.step", &step) ||
        meta_int(st, "ckpt.best_epoch", &be) || meta_int(st, "ckpt.bad_epochs", &bad) ||
        meta_int(st, "ckpt.train_from", &tf) || !cfg || !nn_st_meta(st, "ckpt.history") ||
        !nn_st_meta(st, "ckpt.best_val_loss")) {
        nn_set_error("%s: not an nnmask checkpoint (metadata missing)", p);
        goto done;
    }
    if (strcmp(cfg, t->cfg_text)) {
        nn_set_error("%s: the configuration changed since this run started (only train.epochs may "
                     "change on --resume); see %s/config.ini", p, t->out);
        goto done;
    }
    if (tf != t->train_from) {
        nn_set_error("%s: trainable stages differ", p);
        goto done;
    }
    int64_t sh[1] = {(int64_t)t->clf->n_params}, sb[1] = {(int64_t)t->bb_n};
    int64_t s1[2] = {t->clf->feat, t->clf->head_units}, b1[1] = {t->clf->head_units};
    int64_t s2[2] = {t->clf->head_units, t->clf->outs}, b2[1] = {t->clf->outs};
    int r = nn_st_read_f32(st, "head.fc1.weight", t->clf->fc1_w, 2, s1) ||
            nn_st_read_f32(st, "head.fc1.bias", t->clf->fc1_b, 1, b1) ||
            nn_st_read_f32(st, "head.fc2.weight", t->clf->fc2_w, 2, s2) ||
            nn_st_read_f32(st, "head.fc2.bias", t->clf->fc2_b, 1, b2) ||
            nn_st_read_f32(st, "opt.head.m", t->hm, 1, sh);
    if (t->c->optimizer == NN_OPT_ADAM) r = r || nn_st_read_f32(st, "opt.head.v", t->hv, 1, sh);
    if (t->bb_n) {
        r = r || nn_st_read_f32(st, "backbone.trainable", t->bb_params, 1, sb) ||
            nn_st_read_f32(st, "opt.backbone.m", t->bm, 1, sb);
        if (t->c->optimizer == NN_OPT_ADAM) r = r || nn_st_read_f32(st, "opt.backbone.v", t->bv, 1, sb);
    }
    if (r) {
        char e[1024];
        snprintf(e, sizeof e, "%s", nn_error());
        nn_set_error("%s: %s", p, e);
        goto done;
    }
    if (parse_history(t, nn_st_meta(st, "ckpt.history"))) {
        nn_set_error("%s: bad history metadata", p);
        goto done;
    }
    t->start_epoch = (int)ep;
    t->step = step;
    t->best_epoch = (int)be;
    t->bad_epochs = (int)bad;
    t->best_val_loss = strtof(nn_st_meta(st, "ckpt.best_val_loss"), NULL);
    rc = 1;
done:
    nn_st_close(st);
    return rc;
}

/* Config text that must not change across --resume (epochs may). */
static void config_identity(const nn_config *c, char *buf, size_t cap) {
    nn_config k = *c;
    k.epochs = 0;
    k.patience = 0;
    k.threads = 0;
    k.loader_threads = 0;
    k.cache_threads = 0;
    char *p = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&p, &len);
    nn_config_write(&k, f);
    fclose(f);
    snprintf(buf, cap, "%s", p);
    free(p);
}

static nn_mnv2 *load_backbone(const nn_config *c) {
    if (!strcmp(c->backbone, "random")) {
        nn_mnv2 *m = nn_mnv2_new(c->alpha, c->input_size, 0);
        if (!m) return NULL;
        nn_rng r;
        nn_rng_seed(&r, c->seed * 7919ULL + 17);
        if (nn_mnv2_init_random_weights(m, &r, c->out_dir)) {
            nn_mnv2_free(m);
            return NULL;
        }
        return m;
    }
    nn_st *st = nn_st_open(c->backbone);
    if (!st) {
        char e[1024];
        snprintf(e, sizeof e, "%s", nn_error());
        nn_set_error("%s (model.backbone; weights/fetch or convert them first, see weights/README, "
                     "or use 'random')", e);
        return NULL;
    }
    const char *a = nn_st_meta(st, "alpha");
    if (a && fabs(strtod(a, NULL) - c->alpha) > 1e-4) {
        nn_set_error("%s: backbone alpha %s differs from model.alpha %g", c->backbone, a, (double)c->alpha);
        nn_st_close(st);
        return NULL;
    }
    nn_mnv2 *m = nn_mnv2_new(c->alpha, c->input_size, 0);
    if (!m || nn_mnv2_load(m, st, "")) {
        nn_mnv2_free(m);
        nn_st_close(st);
        return NULL;
    }
    nn_st_close(st);
    return m;
}

static void class_weights(trainer *t) {
    const nn_config *c = t->c;
    nn_dataset *ds = &t->ds;
    t->item_w = malloc(((size_t)ds->n + 1) * sizeof(float));
    if (!t->item_w) nn_fatal("out of memory");
    for (int i = 0; i < ds->n; i++) t->item_w[i] = 1.0f;
    if (c->balance == NN_BALANCE_NONE) return;
    int S = c->balance_sources ? ds->n_sources : 1;
    int *cnt = calloc((size_t)S * ds->n_classes, sizeof(int));
    if (!cnt) nn_fatal("out of memory");
    int n = 0, groups = 0;
    for (int k = 0; k < t->n[NN_SPLIT_TRAIN]; k++) {
        const nn_item *it = &ds->items[t->idx[NN_SPLIT_TRAIN][k]];
        int g = (c->balance_sources ? it->source : 0) * ds->n_classes + it->label;
        if (!cnt[g]++) groups++;
        n++;
    }
    for (int i = 0; i < ds->n; i++) {
        const nn_item *it = &ds->items[i];
        int g = (c->balance_sources ? it->source : 0) * ds->n_classes + it->label;
        t->item_w[i] = cnt[g] ? (float)n / ((float)groups * cnt[g]) : 1.0f;
    }
    /* every (source,) class group weighs n / groups in total */
    printf("balance (%s): weight per training image of", c->balance == NN_BALANCE_WEIGHTS ? "loss weights" : "sampling");
    for (int g = 0; g < S * ds->n_classes; g++) {
        if (!cnt[g]) continue;
        if (c->balance_sources) printf(" %s/%s", ds->sources[g / ds->n_classes], ds->classes[g % ds->n_classes]);
        else printf(" %s", ds->classes[g]);
        printf(" %.4f (%d)", (double)n / ((double)groups * cnt[g]), cnt[g]);
    }
    printf("\n");
    free(cnt);
}

/* Epoch order: shuffled training indices, or a balanced sample. */
static void epoch_order(trainer *t, int epoch, int *order) {
    int n = t->n[NN_SPLIT_TRAIN];
    nn_rng r;
    nn_augment_rng(&r, t->c->seed, epoch, -3);
    if (t->c->balance == NN_BALANCE_SAMPLE) {
        double *cum = malloc(((size_t)n + 1) * sizeof *cum);
        if (!cum) nn_fatal("out of memory");
        double s = 0;
        for (int k = 0; k < n; k++) cum[k] = s += t->item_w[t->idx[NN_SPLIT_TRAIN][k]];
        for (int k = 0; k < n; k++) {
            double u = ((nn_rng_u64(&r) >> 11) * (1.0 / 9007199254740992.0)) * s;
            int lo = 0, hi = n - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (cum[mid] > u) hi = mid;
                else lo = mid + 1;
            }
            order[k] = t->idx[NN_SPLIT_TRAIN][lo];
        }
        free(cum);
        return;
    }
    memcpy(order, t->idx[NN_SPLIT_TRAIN], (size_t)n * sizeof(int));
    nn_rng_shuffle(&r, order, n);
}

static int write_preview(trainer *t) {
    const int rows_max = 6, cols = 8;
    int n_tr = t->n[NN_SPLIT_TRAIN];
    if (!n_tr) return 0;
    int picks[6], np = 0;
    /* alternate classes so every class shows */
    for (int k = 0; np < rows_max && k < n_tr * t->ds.n_classes; k++) {
        int want = np % t->ds.n_classes;
        int nth = np / t->ds.n_classes;
        int seen = 0;
        for (int i = 0; i < n_tr; i++) {
            int id = t->idx[NN_SPLIT_TRAIN][(i * 7919L) % n_tr];
            if (t->ds.items[id].label == want && seen++ == nth) {
                picks[np++] = id;
                break;
            }
        }
        if (seen <= nth) break;
    }
    if (!np) return 0;
    nn_image *imgs = calloc((size_t)np * cols, sizeof *imgs);
    const char **caps = calloc((size_t)np * cols, sizeof *caps);
    char(*capbuf)[96] = calloc((size_t)np * cols, sizeof *capbuf);
    if (!imgs || !caps || !capbuf) nn_fatal("out of memory");
    int rc = 0;
    for (int r = 0; r < np && !rc; r++) {
        const nn_item *it = &t->ds.items[picks[r]];
        for (int k = 0; k < cols && !rc; k++) {
            nn_config plain = *t->c;
            if (k == 0) plain.aug_enabled = 0;
            nn_rng rng;
            nn_augment_rng(&rng, t->c->seed, 1000000 + r, k);
            rc = nn_augment(&imgs[r * cols + k], &it->img, it->ctx, t->S, &plain, &rng);
            snprintf(capbuf[r * cols + k], 96, "%s%s", t->ds.classes[it->label], k == 0 ? " (input)" : "");
            caps[r * cols + k] = capbuf[r * cols + k];
        }
    }
    char p[1200];
    path_in(p, sizeof p, t->out, "augment_preview.png");
    if (!rc)
        rc = nn_plot_image_grid(p, imgs, caps, np * cols, cols, t->S < 128 ? 128 : t->S > 160 ? 160 : t->S,
                                t->c->aug_enabled ? "Training inputs: first column as cached, then augmented samples"
                                                  : "Training inputs (augmentation disabled)");
    for (int i = 0; i < np * cols; i++) nn_image_free(&imgs[i]);
    free(imgs);
    free(caps);
    free(capbuf);
    return rc;
}

static void trainer_free(trainer *t) {
    nn_dataset_free(&t->ds);
    for (int s = 0; s < 3; s++) {
        free(t->idx[s]);
        free(t->feat[s]);
    }
    free(t->item_w);
    nn_classifier_free(t->clf);
    free(t->head_grads);
    free(t->hm);
    free(t->hv);
    free(t->bm);
    free(t->bv);
    free(t->hist);
}

/* MODE_FEATURES_AUG: feat[train] = [aug_copies][n_train][feat], copy k of
 * the image at position p of the train split augmented with the stream
 * (seed, k, p): the same on every run and on --resume. */
static int augmented_features(trainer *t) {
    int n = t->n[NN_SPLIT_TRAIN], K = t->c->aug_copies, F = t->clf->feat;
    t->feat[NN_SPLIT_TRAIN] = malloc((size_t)K * n * F * sizeof(float));
    if (!t->feat[NN_SPLIT_TRAIN]) nn_fatal("out of memory for %d x %d augmented features", K, n);
    double t0 = now_s();
    int nb = (n + t->B - 1) / t->B, tty = isatty(2);
    for (int k = 0; k < K; k++) {
        loader L;
        loader_start(&L, t, k, t->idx[NN_SPLIT_TRAIN], n);
        for (int b = 0; b < nb; b++) {
            int s = loader_get(&L, b);
            if (s < 0) {
                loader_stop(&L);
                return -1;
            }
            nn_mnv2_infer(t->clf->backbone, L.x[s], L.cnt[s], t->feat[NN_SPLIT_TRAIN] + ((size_t)k * n + (size_t)b * t->B) * F,
                          NULL, NULL);
            loader_release(&L, b);
            if (tty) {
                double el = now_s() - t0, done = (double)k * n + (double)(b + 1) * t->B;
                char eta[32];
                fmt_time(eta, sizeof eta, el / done * ((double)K * n - done));
                fprintf(stderr, "\r  train features, augmented copy %d/%d  batch %d/%d  %.1f img/s  ETA %s\033[K", k + 1, K,
                        b + 1, nb, done / el, eta);
            }
        }
        loader_stop(&L);
    }
    if (tty) fprintf(stderr, "\r\033[K");
    printf("  train: backbone features of %d augmented copies of %d images in %.1f s\n", K, n, now_s() - t0);
    fflush(stdout);
    return 0;
}

/* ===== the run ========================================================== */

static int run_epoch(trainer *t, int epoch, nn_head_ws *ws, float *pooled, float *dpooled, hist_row *h) {
    const nn_config *c = t->c;
    int n = t->n[NN_SPLIT_TRAIN];
    int *order = malloc(((size_t)n + 1) * sizeof(int));
    if (!order) nn_fatal("out of memory");
    epoch_order(t, epoch, order);
    int nb = (n + t->B - 1) / t->B;
    nn_rng drop;
    nn_augment_rng(&drop, c->seed, epoch, -2);
    loader L;
    int use_loader = t->mode != MODE_FEATURES && t->mode != MODE_FEATURES_AUG;
    if (use_loader) loader_start(&L, t, epoch, order, n);
    int copies = t->mode == MODE_FEATURES_AUG ? t->c->aug_copies : 1;
    nn_rng pick; /* which augmented copy each image shows this epoch */
    nn_augment_rng(&pick, c->seed, epoch, -4);
    float *probs = malloc((size_t)t->B * t->clf->n_classes * sizeof(float));
    float *fb = malloc((size_t)t->B * t->clf->feat * sizeof(float));
    int *lb = malloc((size_t)t->B * sizeof(int));
    float *wb = malloc((size_t)t->B * sizeof(float));
    if (!probs || !fb || !lb || !wb) nn_fatal("out of memory");
    double loss_sum = 0, t0 = now_s(), last_print = 0;
    long correct = 0, seen = 0;
    int rc = 0, tty = isatty(2);
    float lr = 0;
    for (int b = 0; b < nb; b++) {
        const float *feat;
        const int *labels;
        const float *w;
        int cnt, slot = -1;
        if (!use_loader) {
            cnt = n - b * t->B < t->B ? n - b * t->B : t->B;
            for (int j = 0; j < cnt; j++) {
                int it = order[b * t->B + j];
                /* feature rows are indexed by position in the train split */
                size_t row = (size_t)t->ds.items[it].group;
                if (copies > 1) row += (size_t)nn_rng_int(&pick, copies) * n;
                memcpy(fb + (size_t)j * t->clf->feat, t->feat[NN_SPLIT_TRAIN] + row * t->clf->feat,
                       t->clf->feat * sizeof(float));
                lb[j] = t->ds.items[it].label;
                wb[j] = t->item_w[it];
            }
            feat = fb, labels = lb, w = wb;
        } else {
            slot = loader_get(&L, b);
            if (slot < 0) {
                rc = -1;
                break;
            }
            cnt = L.cnt[slot];
            labels = L.labels[slot];
            w = L.w[slot];
            if (t->mode == MODE_FROZEN_AUG) nn_mnv2_infer(t->clf->backbone, L.x[slot], cnt, pooled, NULL, NULL);
            else nn_mnv2_train_forward(t->clf->backbone, L.x[slot], cnt, pooled);
            feat = pooled;
        }
        const float *wts = c->balance == NN_BALANCE_WEIGHTS ? w : NULL;
        memset(t->head_grads, 0, t->clf->n_params * sizeof(float));
        float loss = nn_head_train_step(t->clf, ws, feat, cnt, labels, wts, 1, &drop, t->head_grads,
                                        t->mode == MODE_FINETUNE ? dpooled : NULL, probs);
        if (!isfinite(loss)) {
            if (slot >= 0) loader_release(&L, b);
            rc = nn_set_error("loss became %g at epoch %d, batch %d: training diverged (lower train.lr?); "
                              "the last good checkpoint is kept in %s/%s", (double)loss, epoch + 1, b + 1, t->out, CKPT);
            break;
        }
        if (t->mode == MODE_FINETUNE) {
            nn_mnv2_zero_grad(t->clf->backbone);
            nn_mnv2_train_backward(t->clf->backbone, dpooled, cnt);
        }
        lr = lr_at(t, t->step, epoch, nb);
        t->step++;
        opt_step(t, lr);
        loss_sum += (double)loss * cnt;
        for (int j = 0; j < cnt; j++)
            correct += nn_predict_class(probs + (size_t)j * t->clf->n_classes, t->clf->n_classes, 0.5f) == labels[j];
        seen += cnt;
        if (slot >= 0) loader_release(&L, b); /* labels read above: only now may the slot refill */
        double el = now_s() - t0;
        if (tty && (el - last_print > 0.25 || b == nb - 1)) {
            last_print = el;
            char eta[32];
            fmt_time(eta, sizeof eta, el / (b + 1) * (nb - b - 1));
            fprintf(stderr, "\repoch %d/%d  batch %d/%d  loss %.4f  acc %.4f  %.1f img/s  ETA %s\033[K", epoch + 1,
                    c->epochs, b + 1, nb, loss_sum / seen, (double)correct / seen, seen / el, eta);
        }
    }
    if (tty) fprintf(stderr, "\r\033[K");
    if (use_loader) loader_stop(&L);
    free(order);
    free(probs);
    free(fb);
    free(lb);
    free(wb);
    h->epoch = epoch + 1;
    h->train_loss = seen ? (float)(loss_sum / seen) : NAN;
    h->train_acc = seen ? (float)correct / seen : NAN;
    h->lr = lr;
    return rc;
}

static int validate(trainer *t, hist_row *h) {
    int n = t->n[NN_SPLIT_VAL];
    h->val_loss = h->val_acc = NAN;
    if (!n) return 0;
    int K = t->clf->n_classes;
    float *p = malloc((size_t)n * K * sizeof(float));
    int *l = malloc((size_t)n * sizeof(int));
    if (!p || !l) nn_fatal("out of memory");
    if (split_probs(t, NN_SPLIT_VAL, p)) {
        free(p);
        free(l);
        return -1;
    }
    for (int i = 0; i < n; i++) l[i] = t->ds.items[t->idx[NN_SPLIT_VAL][i]].label;
    nn_metrics m;
    nn_metrics_compute(&m, p, l, n, K, 0.5f);
    h->val_loss = (float)m.loss;
    h->val_acc = (float)m.accuracy;
    nn_metrics_free(&m);
    free(p);
    free(l);
    return 0;
}

/* predictions.csv: split,label,source,path,x0,y0,x1,y1,P(class)...,predicted
 * for every validation and test item (error analysis, other thresholds). */
static int write_predictions(const trainer *t, const nn_classifier *clf, const float *probs, const int *ok) {
    const nn_dataset *ds = &t->ds;
    int K = clf->n_classes;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return nn_set_error("predictions.csv: out of memory");
    fprintf(f, "split,label,source,path,x0,y0,x1,y1");
    for (int k = 0; k < K; k++) fprintf(f, ",p_%s", clf->classes[k]);
    fprintf(f, ",predicted\n");
    static const char *nm[3] = {"train", "val", "test"};
    for (int i = 0; i < ds->n; i++) {
        const nn_item *it = &ds->items[i];
        if (it->split == NN_SPLIT_TRAIN || !ok[i]) continue;
        fprintf(f, "%s,%s,%s,", nm[it->split], ds->classes[it->label], ds->sources[it->source]);
        if (strpbrk(it->path, ",\"\n")) {
            fputc('"', f);
            for (const char *q = it->path; *q; q++) {
                if (*q == '"') fputc('"', f);
                fputc(*q, f);
            }
            fputc('"', f);
        } else {
            fputs(it->path, f);
        }
        if (it->has_box) fprintf(f, ",%.9g,%.9g,%.9g,%.9g", it->box[0], it->box[1], it->box[2], it->box[3]);
        else fprintf(f, ",,,,");
        for (int k = 0; k < K; k++) fprintf(f, ",%.6f", probs[(size_t)i * K + k]);
        fprintf(f, ",%s\n", clf->classes[nn_classifier_decide(clf, probs + (size_t)i * K)]);
    }
    return save_memstream(f, &buf, &len, t->out, "predictions.csv");
}

static int finish_run(trainer *t, double train_seconds) {
    const nn_config *c = t->c;
    char p[1200];
    path_in(p, sizeof p, t->out, "model.safetensors");
    nn_classifier *best = nn_classifier_load(p);
    if (!best) return -1;
    if (nn_classifier_prepare(best, t->B)) {
        nn_classifier_free(best);
        return -1;
    }
    int K = best->n_classes;
    nn_dataset *ds = &t->ds;
    float *probs = malloc(((size_t)ds->n + 1) * K * sizeof(float));
    int *ok = calloc((size_t)ds->n + 1, sizeof(int));
    if (!probs || !ok) nn_fatal("out of memory");
    for (int i = 0; i < ds->n * K; i++) probs[i] = NAN;
    /* validation and test probabilities with the best model */
    for (int sp = NN_SPLIT_VAL; sp <= NN_SPLIT_TEST; sp++) {
        int n = t->n[sp];
        if (!n) continue;
        float *pp = malloc((size_t)n * K * sizeof(float));
        if (!pp) nn_fatal("out of memory");
        if (t->train_from == NN_MNV2_STAGES) {
            nn_classifier_head_probs(best, t->feat[sp], n, pp);
        } else {
            float *feat = malloc((size_t)n * best->feat * sizeof(float));
            nn_classifier *save = t->clf;
            t->clf = best;
            int r = compute_features(t, t->idx[sp], n, feat, sp == NN_SPLIT_VAL ? "validation" : "test");
            t->clf = save;
            if (r) {
                free(feat);
                free(pp);
                nn_classifier_free(best);
                return -1;
            }
            nn_classifier_head_probs(best, feat, n, pp);
            free(feat);
        }
        for (int i = 0; i < n; i++) {
            memcpy(probs + (size_t)t->idx[sp][i] * K, pp + (size_t)i * K, K * sizeof(float));
            ok[t->idx[sp][i]] = 1;
        }
        free(pp);
    }
    /* decision threshold on validation */
    int th_src = -1; /* threshold_source: -1 all validation items */
    if (strcmp(c->threshold_source, "all")) {
        for (int k = 0; k < ds->n_sources; k++)
            if (!strcmp(ds->sources[k], c->threshold_source)) th_src = k;
        if (th_src < 0) {
            nn_classifier_free(best);
            free(probs);
            free(ok);
            return nn_set_error("train.threshold_source: no data source named '%s'", c->threshold_source);
        }
    }
    if (K == 2 && c->threshold_rule != NN_THRESH_FIXED && t->n[NN_SPLIT_VAL]) {
        int n = 0;
        float *pv = malloc((size_t)t->n[NN_SPLIT_VAL] * 2 * sizeof(float));
        int *lv = malloc((size_t)t->n[NN_SPLIT_VAL] * sizeof(int));
        for (int i = 0; i < t->n[NN_SPLIT_VAL]; i++) {
            const nn_item *it = &ds->items[t->idx[NN_SPLIT_VAL][i]];
            if (th_src >= 0 && it->source != th_src) continue;
            memcpy(pv + 2 * n, probs + (size_t)t->idx[NN_SPLIT_VAL][i] * 2, 2 * sizeof(float));
            lv[n++] = it->label;
        }
        char on[200] = "";
        if (th_src >= 0) snprintf(on, sizeof on, " of source %.120s", ds->sources[th_src]);
        if (!n) {
            free(pv);
            free(lv);
            nn_classifier_free(best);
            free(probs);
            free(ok);
            return nn_set_error("train.threshold_source: source '%s' has no validation images", c->threshold_source);
        }
        best->threshold = nn_threshold_select(pv, lv, n, c->threshold_rule, c->threshold, c->threshold_class,
                                              c->threshold_min_recall);
        if (c->threshold_rule == NN_THRESH_EQUAL_RECALL)
            snprintf(best->threshold_rule, sizeof best->threshold_rule, "equal_recall on %d validation images%s", n, on);
        else
            snprintf(best->threshold_rule, sizeof best->threshold_rule, "min_recall:%.60s:%g on %d validation images%s",
                     c->threshold_class_name, (double)c->threshold_min_recall, n, on);
        free(pv);
        free(lv);
    } else {
        best->threshold = c->threshold;
        snprintf(best->threshold_rule, sizeof best->threshold_rule, "fixed");
    }
    if (write_predictions(t, best, probs, ok)) {
        nn_classifier_free(best);
        free(probs);
        free(ok);
        return -1;
    }
    char best_ep[32];
    snprintf(best_ep, sizeof best_ep, "%d", t->best_epoch);
    const char *meta[] = {"trained_epochs", best_ep, NULL};
    if (nn_classifier_save(best, p, meta)) {
        nn_classifier_free(best);
        return -1;
    }
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "model", p);
    cJSON_AddNumberToObject(extra, "best_epoch", t->best_epoch);
    cJSON_AddNumberToObject(extra, "epochs_run", t->n_hist);
    cJSON_AddNumberToObject(extra, "train_seconds", train_seconds);
    cJSON_AddStringToObject(extra, "threshold_rule", best->threshold_rule);
    if (c->folds) {
        cJSON_AddNumberToObject(extra, "folds", c->folds);
        cJSON_AddNumberToObject(extra, "fold", c->fold);
    }
    if (t->n[NN_SPLIT_VAL]) {
        nn_metrics mv;
        if (subset_metrics(&mv, best, ds, probs, ok, 1 << NN_SPLIT_VAL, -1)) {
            cJSON_AddItemToObject(extra, "validation", nn_metrics_json(&mv, (const char(*)[64])best->classes));
            nn_metrics_free(&mv);
        }
    }
    cJSON *js = NULL;
    int rc = 0;
    if (t->n[NN_SPLIT_TEST]) {
        rc = nn_eval_outputs(t->out, best, ds, probs, ok, 1 << NN_SPLIT_TEST, c->plots, "test split", extra, &js, NULL);
    } else if (t->n[NN_SPLIT_VAL]) {
        rc = nn_eval_outputs(t->out, best, ds, probs, ok, 1 << NN_SPLIT_VAL, c->plots, "validation split", extra, &js, NULL);
    } else {
        cJSON_Delete(extra);
        printf("no validation or test split: no metrics written\n");
    }
    if (rc == 0 && js) {
        const cJSON *a = cJSON_GetObjectItem(js, "accuracy"), *pr = cJSON_GetObjectItem(js, "precision"),
                    *re = cJSON_GetObjectItem(js, "recall"), *f1 = cJSON_GetObjectItem(js, "f1"),
                    *auc = cJSON_GetObjectItem(js, "auc"), *nn = cJSON_GetObjectItem(js, "n");
        printf("\n%s (%d images, best epoch %d): accuracy %.2f%%  macro precision %.2f%%  recall %.2f%%  "
               "F1 %.2f%%  ROC AUC %.4f\n",
               t->n[NN_SPLIT_TEST] ? "test" : "validation", nn ? nn->valueint : 0, t->best_epoch,
               100 * (a ? a->valuedouble : NAN), 100 * (pr ? pr->valuedouble : NAN), 100 * (re ? re->valuedouble : NAN),
               100 * (f1 ? f1->valuedouble : NAN), auc && cJSON_IsNumber(auc) ? auc->valuedouble : NAN);
        const cJSON *srcs = cJSON_GetObjectItem(js, "sources"), *s;
        cJSON_ArrayForEach(s, srcs) {
            const cJSON *sa = cJSON_GetObjectItem(s, "accuracy"), *sauc = cJSON_GetObjectItem(s, "auc");
            printf("  source %-16s accuracy %.2f%%  AUC %.4f  recall:", s->string, 100 * sa->valuedouble,
                   cJSON_IsNumber(sauc) ? sauc->valuedouble : NAN);
            const cJSON *pc = cJSON_GetObjectItem(s, "per_class"), *e;
            cJSON_ArrayForEach(e, pc) printf(" %s %.2f%%", e->string, 100 * cJSON_GetObjectItem(e, "recall")->valuedouble);
            printf("\n");
            char key[64];
            snprintf(key, sizeof key, "faces_min%dpx", NN_EVAL_MIN_FACE);
            const cJSON *big = cJSON_GetObjectItem(s, key);
            if (big) {
                const cJSON *ba = cJSON_GetObjectItem(big, "accuracy"), *bauc = cJSON_GetObjectItem(big, "auc");
                printf("    faces >= %d px  accuracy %.2f%%  AUC %.4f  recall:", NN_EVAL_MIN_FACE, 100 * ba->valuedouble,
                       cJSON_IsNumber(bauc) ? bauc->valuedouble : NAN);
                pc = cJSON_GetObjectItem(big, "per_class");
                cJSON_ArrayForEach(e, pc) printf(" %s %.2f%%", e->string, 100 * cJSON_GetObjectItem(e, "recall")->valuedouble);
                printf("\n");
            }
        }
        char rule[256];
        nn_classifier_rule_text(best, rule, sizeof rule);
        printf("decision: %s (%s)\n", rule, best->threshold_rule);
    }
    cJSON_Delete(js);
    printf("\noutputs in %s/:\n  model.safetensors  metrics.json  report.txt  history.csv  split.csv  predictions.csv  config.ini\n",
           t->out);
    if (c->plots) printf("  curves.png  confusion.png  roc.png  augment_preview.png\n");
    free(probs);
    free(ok);
    nn_classifier_free(best);
    return rc;
}

int nn_train_run(const nn_config *c, int resume) {
    trainer T, *t = &T;
    memset(t, 0, sizeof *t);
    t->c = c;
    t->S = c->input_size;
    t->B = c->batch;
    t->best_val_loss = INFINITY;
    snprintf(t->out, sizeof t->out, "%s", c->out_dir);
    config_identity(c, t->cfg_text, sizeof t->cfg_text);
    nn_threads_set(c->threads);
    double t_start = now_s();
    int rc = -1;
    char p[1200];
    if (nn_mkdir_p(t->out)) return -1;
    path_in(p, sizeof p, t->out, CKPT);
    int have_ckpt = access(p, F_OK) == 0;
    if (resume && !have_ckpt) printf("no checkpoint in %s: starting from the beginning\n", t->out);
    if (!resume && have_ckpt) printf("note: %s exists; starting a new run (use --resume to continue it)\n", p);
    resume = resume && have_ckpt;
    t->train_from = c->freeze == NN_FREEZE_ALL ? NN_MNV2_STAGES
                    : c->freeze == NN_FREEZE_NONE ? 0
                                                  : NN_MNV2_STAGES - c->freeze_last;
    t->mode = t->train_from < NN_MNV2_STAGES        ? MODE_FINETUNE
              : c->aug_enabled && c->aug_copies > 0 ? MODE_FEATURES_AUG
              : (c->aug_enabled || !c->precompute)  ? MODE_FROZEN_AUG
                                                    : MODE_FEATURES;

    /* ---- data ---- */
    double t0 = now_s();
    path_in(p, sizeof p, t->out, "split.csv");
    if (resume) {
        if (nn_split_read(&t->ds, p, 7, (const char(*)[64])c->classes, c->n_classes)) goto out;
    } else {
        if (nn_dataset_scan(&t->ds, c)) goto out;
        if (c->folds) {
            nn_dataset_split_fold(&t->ds, c->folds, c->fold, c->seed);
            int cnt[3][NN_CFG_MAX_CLASSES], nt = 0, nv = 0;
            nn_dataset_counts(&t->ds, cnt);
            for (int k = 0; k < t->ds.n_classes; k++) nt += cnt[NN_SPLIT_TEST][k], nv += cnt[NN_SPLIT_VAL][k];
            if (!nt || !nv) {
                nn_set_error("data.folds %d: part %d of the %d images/faces holds no %s item (fewer "
                             "photos than folds?): use fewer folds", c->folds, nt ? (c->fold + 1) % c->folds : c->fold,
                             t->ds.n, nt ? "validation" : "test");
                goto out;
            }
        } else
            nn_dataset_split(&t->ds, c->split, c->seed);
    }
    int context = c->aug_enabled && t->mode != MODE_FEATURES;
    if (nn_data_cache(&t->ds, t->S, c->cache_threads > 0 ? c->cache_threads : nn_threads_get(), context)) goto out;
    if (!resume && nn_split_write(&t->ds, p)) goto out;
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        fprintf(f, "; effective configuration of this run (nnmask-train)\n");
        nn_config_write(c, f);
        if (save_memstream(f, &buf, &len, t->out, "config.ini")) goto out;
    }
    int counts[3][NN_CFG_MAX_CLASSES];
    nn_dataset_counts(&t->ds, counts);
    size_t cache_bytes = 0;
    for (int i = 0; i < t->ds.n; i++) cache_bytes += (size_t)t->ds.items[i].img.w * t->ds.items[i].img.h * 3;
    printf("data: %d images from %d source%s (%d duplicates removed, %d unreadable skipped), "
           "decoded and cached in %.1f s (%zu MB)\n",
           t->ds.n, t->ds.n_sources, t->ds.n_sources > 1 ? "s" : "", t->ds.n_duplicates, t->ds.n_skipped,
           now_s() - t0, cache_bytes >> 20);
    for (int sp = 0; sp < 3; sp++) {
        static const char *nm[3] = {"train", "val", "test"};
        printf("  %-5s", nm[sp]);
        for (int k = 0; k < c->n_classes; k++) printf("  %s %d", c->classes[k], counts[sp][k]);
        printf("\n");
    }
    for (int sp = 0; sp < 3; sp++) {
        t->idx[sp] = malloc(((size_t)t->ds.n + 1) * sizeof(int));
        if (!t->idx[sp]) nn_fatal("out of memory");
    }
    for (int i = 0; i < t->ds.n; i++) {
        int sp = t->ds.items[i].split;
        t->ds.items[i].group = t->n[sp]; /* position within its split (feature rows) */
        t->idx[sp][t->n[sp]++] = i;
    }
    if (!t->n[NN_SPLIT_TRAIN]) {
        nn_set_error("the training split is empty");
        goto out;
    }
    class_weights(t);

    /* ---- model ---- */
    nn_mnv2 *bb = load_backbone(c);
    if (!bb) goto out;
    nn_rng hr;
    nn_rng_seed(&hr, c->seed * 104729ULL + 3);
    t->clf = nn_classifier_new(bb, c->n_classes, (const char(*)[64])c->classes, c->head_units, c->dropout, &hr);
    if (!t->clf) {
        nn_mnv2_free(bb);
        goto out;
    }
    if (nn_classifier_prepare(t->clf, t->B)) goto out;
    if (t->mode == MODE_FINETUNE) {
        if (nn_mnv2_prepare_train(bb, t->B, t->train_from, 0)) goto out;
        t->bb_n = nn_mnv2_trainable(bb, &t->bb_params, &t->bb_grads);
    }
    size_t hp = t->clf->n_params;
    t->head_grads = calloc(hp, sizeof(float));
    t->hm = calloc(hp, sizeof(float));
    t->hv = calloc(hp, sizeof(float));
    t->bm = calloc(t->bb_n + 1, sizeof(float));
    t->bv = calloc(t->bb_n + 1, sizeof(float));
    t->hist = calloc((size_t)c->epochs + 1, sizeof *t->hist);
    if (!t->head_grads || !t->hm || !t->hv || !t->bm || !t->bv || !t->hist) nn_fatal("out of memory");
    if (resume) {
        int r = load_checkpoint(t);
        if (r < 0) goto out;
        printf("resuming after epoch %d of %d (step %ld) from %s/%s\n", t->start_epoch, c->epochs, t->step, t->out, CKPT);
        t->hist = realloc(t->hist, ((size_t)(t->n_hist > c->epochs ? t->n_hist : c->epochs) + 1) * sizeof *t->hist);
    }
    static const char *mode_nm[4] = {"frozen backbone, features computed once",
                                     "frozen backbone, augmented batches", "fine-tuning",
                                     "frozen backbone, features of augmented copies computed once"};
    char stages[48];
    if (t->train_from >= NN_MNV2_STAGES) snprintf(stages, sizeof stages, "backbone frozen");
    else snprintf(stages, sizeof stages, "stages %d..18 trainable", t->train_from);
    printf("model: MobileNetV2 alpha %g, input %d, %s (%s, %zu backbone + %zu head "
           "parameters), head Dense(%d) ReLU + Dropout(%g) + %s; %s\n",
           (double)c->alpha, t->S, c->backbone, stages, t->bb_n, hp, c->head_units, (double)c->dropout,
           t->clf->outs == 1 ? "Dense(1) sigmoid" : "Dense(K) softmax", mode_nm[t->mode]);
    printf("train: %d epochs, batch %d, %s lr %g (%s), %d compute threads, %d loader thread%s\n", c->epochs, t->B,
           c->optimizer == NN_OPT_ADAM ? "adam" : "sgd", (double)c->lr,
           c->schedule == NN_SCHED_INVERSE_TIME ? "inverse-time decay"
           : c->schedule == NN_SCHED_COSINE     ? "cosine"
           : c->schedule == NN_SCHED_STEP       ? "step"
                                                : "constant",
           nn_threads_get(), c->loader_threads, c->loader_threads > 1 ? "s" : "");
    fflush(stdout);
    if (c->preview && c->plots && write_preview(t)) goto out;

    /* ---- frozen features ---- */
    if (t->train_from == NN_MNV2_STAGES) {
        for (int sp = (t->mode == MODE_FEATURES ? 0 : 1); sp < 3; sp++) {
            if (!t->n[sp]) continue;
            t->feat[sp] = malloc((size_t)t->n[sp] * t->clf->feat * sizeof(float));
            if (!t->feat[sp]) nn_fatal("out of memory");
            static const char *nm[3] = {"train", "validation", "test"};
            if (compute_features(t, t->idx[sp], t->n[sp], t->feat[sp], nm[sp])) goto out;
        }
        if (t->mode == MODE_FEATURES_AUG && augmented_features(t)) goto out;
    }

    /* ---- epochs ---- */
    nn_head_ws ws;
    if (nn_head_ws_init(&ws, t->clf, t->B)) goto out;
    float *pooled = malloc((size_t)t->B * t->clf->feat * sizeof(float));
    float *dpooled = malloc((size_t)t->B * t->clf->feat * sizeof(float));
    if (!pooled || !dpooled) nn_fatal("out of memory");
    double train_t0 = now_s();
    int stopped_early = 0;
    for (int e = t->start_epoch; e < c->epochs; e++) {
        double e0 = now_s();
        hist_row h = {0};
        if (run_epoch(t, e, &ws, pooled, dpooled, &h)) goto out_loop;
        if (validate(t, &h)) goto out_loop;
        h.seconds = now_s() - e0;
        t->hist[t->n_hist++] = h;
        int improved = !t->n[NN_SPLIT_VAL] || h.val_loss < t->best_val_loss;
        if (improved) {
            t->best_val_loss = t->n[NN_SPLIT_VAL] ? h.val_loss : INFINITY;
            t->best_epoch = e + 1;
            t->bad_epochs = 0;
            path_in(p, sizeof p, t->out, "model.safetensors");
            char be[32];
            snprintf(be, sizeof be, "%d", e + 1);
            const char *meta[] = {"trained_epochs", be, NULL};
            if (nn_classifier_save(t->clf, p, meta)) goto out_loop;
        } else {
            t->bad_epochs++;
        }
        if (save_checkpoint(t, e + 1) || write_history_csv(t)) goto out_loop;
        if (c->plots && write_curves(t)) goto out_loop;
        char el[32];
        fmt_time(el, sizeof el, now_s() - t_start);
        printf("epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  %.1f s (%s total)%s\n", e + 1,
               c->epochs, h.train_loss, h.train_acc, h.val_loss, h.val_acc, h.lr, h.seconds, el,
               improved && t->n[NN_SPLIT_VAL] ? "  *best" : "");
        fflush(stdout);
        if (c->patience > 0 && t->bad_epochs >= c->patience) {
            printf("early stopping: no better validation loss for %d epochs (best epoch %d)\n", c->patience,
                   t->best_epoch);
            stopped_early = 1;
            break;
        }
    }
    (void)stopped_early;
    /* A run killed between its last checkpoint and history.csv resumes with
     * no epoch left to train: write the history (from the checkpoint) here. */
    if (write_history_csv(t)) goto out_loop;
    if (t->n_hist && c->plots && write_curves(t)) goto out_loop;
    rc = finish_run(t, now_s() - train_t0);
    if (rc == 0) {
        char el[32];
        fmt_time(el, sizeof el, now_s() - t_start);
        printf("total time %s\n", el);
    }
out_loop:
    nn_head_ws_free(&ws);
    free(pooled);
    free(dpooled);
out:
    trainer_free(t);
    return rc;
}
