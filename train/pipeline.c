/* pipeline.c — the per-frame face-mask pipeline of nnmask-live, nnmask-detect
 * and nnmask-bench: detect -> crop -> classify (one batch) -> draw, timed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classifier.h"
#include "facecrop.h"
#include "pipeline.h"

#include <unistd.h>

/* faces classified per backbone call; larger frames' faces go in chunks */
#define PIPE_CLF_BATCH 8

struct nn_pipeline {
    nn_uf *det;
    nn_classifier *clf;
    float *x;        /* classifier input [max_faces, S, S, 3] */
    float *probs;    /* [max_faces, n_classes] */
    int *cls_masked; /* per class: 1 mask worn, 0 not, -1 unknown */
    nn_pipe_opts opts;
    int det_frame_w, det_frame_h;   /* frame size the detector input was set for */
    nn_uf_box *boxes;
    nn_pipe_face *faces;
    int n_faces;
    nn_pipe_timing timing;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void nn_pipe_opts_default(nn_pipe_opts *o) {
    memset(o, 0, sizeof *o);
    nn_uf_opts_default(&o->det);
    o->det_long_side = 320;
    o->max_faces = 32;
}

nn_pipeline *nn_pipeline_new(const nn_pipe_opts *o) {
    if (!o->detector) {
        nn_set_error("no face detector given");
        return NULL;
    }
    nn_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        nn_set_error("out of memory");
        return NULL;
    }
    p->opts = *o;
    if (p->opts.max_faces <= 0) p->opts.max_faces = 32;
    if (p->opts.det_long_side < 32) p->opts.det_long_side = 320;
    p->opts.detector = NULL;     /* the caller's strings are not kept */
    p->opts.classifier = NULL;
    if (o->threads > 0) nn_threads_set(o->threads);
    p->boxes = calloc((size_t)p->opts.max_faces, sizeof *p->boxes);
    p->faces = calloc((size_t)p->opts.max_faces, sizeof *p->faces);
    if (!p->boxes || !p->faces) {
        nn_set_error("out of memory");
        goto fail;
    }
    p->det = nn_uf_load(o->detector);
    if (!p->det) goto fail;
    if (o->classifier) {
        p->clf = nn_classifier_load(o->classifier);
        if (!p->clf) goto fail;
        int b = p->opts.max_faces < PIPE_CLF_BATCH ? p->opts.max_faces : PIPE_CLF_BATCH;
        nn_classifier_release_params(p->clf); /* inference only: 9 MB less (before the buffers) */
        if (nn_classifier_prepare(p->clf, b)) goto fail;
        size_t S = (size_t)p->clf->input_size;
        p->x = malloc((size_t)p->opts.max_faces * S * S * 3 * sizeof *p->x);
        p->probs = malloc((size_t)p->opts.max_faces * p->clf->n_classes * sizeof *p->probs);
        p->cls_masked = malloc((size_t)p->clf->n_classes * sizeof *p->cls_masked);
        if (!p->x || !p->probs || !p->cls_masked) {
            nn_set_error("out of memory");
            goto fail;
        }
        for (int k = 0; k < p->clf->n_classes; k++)
            p->cls_masked[k] = nn_pipe_class_masked(p->clf->classes[k]);
    }
    return p;
fail:
    nn_pipeline_free(p);
    return NULL;
}

void nn_pipeline_free(nn_pipeline *p) {
    if (!p) return;
    if (p->det) nn_uf_free(p->det);
    if (p->clf) nn_classifier_free(p->clf);
    free(p->x);
    free(p->probs);
    free(p->cls_masked);
    free(p->boxes);
    free(p->faces);
    free(p);
}

int nn_pipeline_has_classifier(const nn_pipeline *p) { return p->clf != NULL; }

int nn_pipe_class_masked(const char *name) {
    if (!strncmp(name, "without", 7) || !strncmp(name, "no_", 3) ||
        !strncmp(name, "no mask", 7) || strstr(name, "incorrect"))
        return 0;
    if (!strncmp(name, "with", 4) || !strcmp(name, "mask") || !strcmp(name, "masked"))
        return 1;
    return -1;
}

/* Crops every face (nn_face_crop: the training crop policy), then one
 * batched classifier call. */
static int classify_faces(nn_pipeline *p, const nn_image *frame, int n) {
    nn_classifier *c = p->clf;
    int S = c->input_size, K = c->n_classes;
    size_t per = (size_t)S * S * 3;
    double t0 = now_s();
    nn_image crop = {0};
    for (int i = 0; i < n; i++) {
        const nn_pipe_face *f = &p->faces[i];
        if (nn_face_crop(&crop, frame, f->x0, f->y0, f->x1, f->y1, S)) return -1;
        nn_image_to_floats(p->x + i * per, &crop, 1.0f / 127.5f, -1.0f);
        nn_image_free(&crop);
    }
    double t1 = now_s();
    nn_classifier_predict_floats(c, p->x, n, p->probs);
    for (int i = 0; i < n; i++) {
        nn_pipe_face *f = &p->faces[i];
        const float *pr = p->probs + (size_t)i * K;
        int k = nn_classifier_decide(c, pr);
        f->cls = k;
        f->label = c->classes[k];
        f->prob = pr[k];
        f->masked = p->cls_masked[k];
    }
    p->timing.crop_s = t1 - t0;
    p->timing.classify_s = now_s() - t1;
    return 0;
}

int nn_pipeline_run(nn_pipeline *p, const nn_image *frame) {
    memset(&p->timing, 0, sizeof p->timing);
    p->n_faces = 0;
    if (!frame || !frame->rgb || frame->w <= 0 || frame->h <= 0)
        return nn_set_error("nn_pipeline_run: empty frame");
    double t0 = now_s();
    if (frame->w != p->det_frame_w || frame->h != p->det_frame_h) {
        int iw, ih;
        nn_uf_size_for_frame(frame->w, frame->h, p->opts.det_long_side, &iw, &ih);
        if (nn_uf_set_input_size(p->det, iw, ih)) return -1;
        p->det_frame_w = frame->w;
        p->det_frame_h = frame->h;
    }
    int n = nn_uf_detect(p->det, frame, &p->opts.det, p->boxes, p->opts.max_faces);
    if (n < 0) return -1;
    if (n > p->opts.max_faces) n = p->opts.max_faces;
    double t1 = now_s();
    p->timing.detect_s = t1 - t0;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        const nn_uf_box *b = &p->boxes[i];
        /* a box clipped to (almost) nothing at the frame edge is no face */
        if (!(isfinite(b->x0) && isfinite(b->y0) && isfinite(b->x1) && isfinite(b->y1)) ||
            !(b->x1 - b->x0 >= 2.0f && b->y1 - b->y0 >= 2.0f))
            continue;
        nn_pipe_face *f = &p->faces[kept++];
        f->x0 = p->boxes[i].x0;
        f->y0 = p->boxes[i].y0;
        f->x1 = p->boxes[i].x1;
        f->y1 = p->boxes[i].y1;
        f->score = p->boxes[i].score;
        f->cls = -1;
        f->label = "face";
        f->prob = -1.0f;
        f->masked = -1;
    }
    n = kept;
    p->n_faces = n;
    p->timing.faces = n;
    if (p->clf && n > 0 && classify_faces(p, frame, n)) {
        p->n_faces = 0;
        return -1;
    }
    return n;
}

const nn_pipe_face *nn_pipeline_faces(const nn_pipeline *p, int *n) {
    if (n) *n = p->n_faces;
    return p->faces;
}

void nn_pipeline_counts(const nn_pipeline *p, int *masked, int *unmasked, int *unknown) {
    int m = 0, u = 0, k = 0;
    for (int i = 0; i < p->n_faces; i++) {
        if (p->faces[i].masked > 0)
            m++;
        else if (p->faces[i].masked == 0)
            u++;
        else
            k++;
    }
    if (masked) *masked = m;
    if (unmasked) *unmasked = u;
    if (unknown) *unknown = k;
}

void nn_pipe_face_text(const nn_pipe_face *f, char *buf, size_t cap) {
    if (f->cls < 0) {
        snprintf(buf, cap, "face %.2f", (double)f->score);
        return;
    }
    int pct = (int)(f->prob * 100.0f + 0.5f);
    const char *name = f->label;
    if (strcmp(name, "with_mask") == 0 || strcmp(name, "mask") == 0)
        name = "Mask";
    else if (strcmp(name, "without_mask") == 0 || strcmp(name, "no_mask") == 0)
        name = "No Mask";
    else if (strcmp(name, "mask_weared_incorrect") == 0)
        name = "Mask Worn Badly";
    snprintf(buf, cap, "%s %d%%", name, pct);
}

nn_rgb nn_pipe_face_color(const nn_pipe_face *f) {
    if (f->masked > 0) return NN_RGB_MASK;
    if (f->masked == 0) return NN_RGB_NOMASK;
    return NN_RGB_FACE;
}

void nn_pipeline_draw(nn_pipeline *p, nn_image *frame) {
    double t0 = now_s();
    char text[96];
    /* worst faces first, so the best ones end up on top */
    for (int i = p->n_faces - 1; i >= 0; i--) {
        const nn_pipe_face *f = &p->faces[i];
        nn_pipe_face_text(f, text, sizeof text);
        nn_draw_face(frame, f->x0, f->y0, f->x1, f->y1, text, nn_pipe_face_color(f));
    }
    p->timing.draw_s = now_s() - t0;
}

const nn_pipe_timing *nn_pipeline_timing(const nn_pipeline *p) { return &p->timing; }

/* The first readable dir/name for dir in dirs (NULL or empty dirs skipped),
 * written into path[4096]. */
static const char *find_in(char *path, const char *const *dirs, int n, const char *name) {
    for (int d = 0; d < n; d++) {
        if (!dirs[d] || !*dirs[d]) continue;
        snprintf(path, 4096, "%s/%s", dirs[d], name);
        if (access(path, R_OK) == 0) return path;
    }
    return NULL;
}

const char *nn_pipeline_default_detector(void) {
    const char *env = getenv("NNMASK_DETECTOR");
    if (env && *env) return env;
    static _Thread_local char path[4096];
    const char *dirs[] = {getenv("NNMASK_MODELS"), "models", "weights"};
    /* RFB-320 finds more faces than slim-320 with fewer false ones (on the
     * 1,762 faces of ../shared/data/street: 65.1% vs 58.7% recall, 91.2% vs
     * 88.0% of the unmasked faces >= 24 px, 286 vs 265 unmatched boxes, at the
     * same score 0.6 and long side 384); slim-320 where only it is there */
    const char *p = find_in(path, dirs, 3, "ultraface-RFB-320.safetensors");
    return p ? p : find_in(path, dirs, 3, "ultraface-slim-320.safetensors");
}

const char *nn_pipeline_default_classifier(void) {
    static _Thread_local char path[4096];
    const char *dirs[] = {getenv("NNMASK_MODELS"), "models"};
    return find_in(path, dirs, 2, "camera.safetensors");
}
