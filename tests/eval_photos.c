/* eval_photos.c — face detection (and mask classification) measured on annotated
 * photos: recall, precision (IoU >= 0.5, greedy by score) and mask accuracy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nnmask.h"
#include "pipeline.h"
#include "testutil.h"
#include "uf_testutil.h"
#include "ultraface.h"

#define MAX_FACES 512

typedef struct {
    char label[32];
    float x0, y0, x1, y1;
} gt_face;

typedef struct {
    char name[256];
    gt_face *faces;
    int n, cap;
} gt_image;

typedef struct {
    gt_image *img;
    int n, cap;
} gt_set;

static void gt_free(gt_set *s) {
    for (int i = 0; i < s->n; i++) free(s->img[i].faces);
    free(s->img);
}

/* image,width,height,label,xmin,ymin,xmax,ymax */
static int gt_load(gt_set *s, const char *csv) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(csv, "r");
    if (!f) return nn_set_error("%s: cannot open", csv);
    char line[1024];
    int ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        if (ln == 1 && !strncmp(line, "image,", 6)) continue;
        char name[256], label[32];
        int w, h;
        float x0, y0, x1, y1;
        if (sscanf(line, "%255[^,],%d,%d,%31[^,],%f,%f,%f,%f", name, &w, &h, label, &x0, &y0, &x1,
                   &y1) != 8) {
            if (line[0] == '\n' || line[0] == 0) continue;
            fclose(f);
            return nn_set_error("%s:%d: expected image,width,height,label,xmin,ymin,xmax,ymax", csv,
                                ln);
        }
        gt_image *gi = NULL;
        for (int i = s->n - 1; i >= 0 && !gi; i--)
            if (!strcmp(s->img[i].name, name)) gi = &s->img[i];
        if (!gi) {
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 64;
                s->img = realloc(s->img, sizeof *s->img * s->cap);
            }
            gi = &s->img[s->n++];
            memset(gi, 0, sizeof *gi);
            snprintf(gi->name, sizeof gi->name, "%s", name);
        }
        if (gi->n == gi->cap) {
            gi->cap = gi->cap ? 2 * gi->cap : 8;
            gi->faces = realloc(gi->faces, sizeof *gi->faces * gi->cap);
        }
        gt_face *g = &gi->faces[gi->n++];
        snprintf(g->label, sizeof g->label, "%s", label);
        g->x0 = x0;
        g->y0 = y0;
        g->x1 = x1;
        g->y1 = y1;
    }
    fclose(f);
    return 0;
}

typedef struct {
    const char *detector, *model;
    int long_side;          /* proportional detector input (the apps' way) */
    int fixed_w, fixed_h;   /* or a fixed input size (detector only) */
    nn_uf_fit fit;
    float threshold;
    int raw_boxes;          /* no box-convention adjustment */
} setting;

typedef struct {
    int images, gt, det, tp;
    int cls_n, cls_ok;              /* matched with_mask/without_mask faces */
    int inc_n, inc_unmasked;        /* matched mask_weared_incorrect faces */
    int gt_small, tp_small;         /* faces narrower than 24 px */
    double seconds;
} result;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float iou_gt(const nn_pipe_face *d, const gt_face *g) {
    nn_uf_box a = {d->x0, d->y0, d->x1, d->y1, 0}, b = {g->x0, g->y0, g->x1, g->y1, 0};
    return nn_uf_iou(&a, &b);
}

static int evaluate(const gt_set *gs, const char *dir, const setting *st, result *r, int verbose) {
    memset(r, 0, sizeof *r);
    nn_pipe_opts po;
    nn_pipe_opts_default(&po);
    po.detector = st->detector;
    po.classifier = st->model;
    po.max_faces = MAX_FACES;
    po.det.score_threshold = st->threshold;
    po.det.fit = st->fit;
    if (st->raw_boxes) {
        po.det.adjust[0] = po.det.adjust[1] = 0.f;
        po.det.adjust[2] = po.det.adjust[3] = 1.f;
    }
    if (st->long_side) po.det_long_side = st->long_side;
    nn_pipeline *pipe = NULL;
    nn_uf *det = NULL;
    static nn_pipe_face faces[MAX_FACES];
    static nn_uf_box boxes[MAX_FACES];
    if (st->fixed_w) {
        det = nn_uf_load(st->detector);
        if (!det || nn_uf_set_input_size(det, st->fixed_w, st->fixed_h)) return -1;
    } else {
        pipe = nn_pipeline_new(&po);
        if (!pipe) return -1;
    }
    for (int i = 0; i < gs->n; i++) {
        const gt_image *gi = &gs->img[i];
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, gi->name);
        nn_image img;
        if (nn_image_load(&img, path)) {
            nn_pipeline_free(pipe);
            nn_uf_free(det);
            return -1;
        }
        double t0 = now_s();
        int n;
        const nn_pipe_face *fs;
        if (det) {
            n = nn_uf_detect(det, &img, &po.det, boxes, MAX_FACES);
            if (n > MAX_FACES) n = MAX_FACES;
            for (int k = 0; k < n; k++)
                faces[k] = (nn_pipe_face){boxes[k].x0, boxes[k].y0, boxes[k].x1, boxes[k].y1,
                                          boxes[k].score, -1, "face", -1.f, -1};
            fs = faces;
        } else {
            if (nn_pipeline_run(pipe, &img) < 0) {
                nn_image_free(&img);
                nn_pipeline_free(pipe);
                return -1;
            }
            fs = nn_pipeline_faces(pipe, &n);
        }
        r->seconds += now_s() - t0;
        /* greedy matching: detections best first (they come sorted), each
         * takes the unmatched ground-truth face it overlaps most */
        char used[MAX_FACES] = {0};
        int tp = 0;
        for (int k = 0; k < n; k++) {
            int best = -1;
            float bi = 0.5f;
            for (int g = 0; g < gi->n && g < MAX_FACES; g++) {
                if (used[g]) continue;
                float v = iou_gt(&fs[k], &gi->faces[g]);
                if (v >= bi) {
                    bi = v;
                    best = g;
                }
            }
            if (best < 0) continue;
            used[best] = 1;
            tp++;
            const gt_face *g = &gi->faces[best];
            if (fs[k].masked >= 0) {
                if (!strcmp(g->label, "with_mask") || !strcmp(g->label, "without_mask")) {
                    r->cls_n++;
                    r->cls_ok += fs[k].masked == !strcmp(g->label, "with_mask");
                } else {
                    r->inc_n++;
                    r->inc_unmasked += fs[k].masked == 0;
                }
            }
        }
        for (int g = 0; g < gi->n; g++)
            if (gi->faces[g].x1 - gi->faces[g].x0 < 24) {
                r->gt_small++;
                r->tp_small += used[g];
            }
        if (verbose)
            printf("  %-36s %3d faces, %3d found, %3d matched\n", gi->name, gi->n, n, tp);
        r->images++;
        r->gt += gi->n;
        r->det += n;
        r->tp += tp;
        nn_image_free(&img);
    }
    nn_pipeline_free(pipe);
    nn_uf_free(det);
    return 0;
}

static void print_result(const setting *st, const char *variant, const result *r) {
    char size[32];
    if (st->fixed_w) snprintf(size, sizeof size, "fixed %dx%d", st->fixed_w, st->fixed_h);
    else snprintf(size, sizeof size, "long %d", st->long_side);
    printf("%-5s %-15s %-9s %s thr %.2f: recall %5.1f%% (%d/%d), precision %5.1f%% (%d/%d), "
           "small-face recall %5.1f%% (%d/%d), %.1f ms/image",
           variant, size, st->fit == NN_UF_LETTERBOX ? "letterbox" : "resize",
           st->raw_boxes ? "raw" : "adj", (double)st->threshold, 100.0 * r->tp / (r->gt ? r->gt : 1), r->tp, r->gt,
           100.0 * r->tp / (r->det ? r->det : 1), r->tp, r->det,
           100.0 * r->tp_small / (r->gt_small ? r->gt_small : 1), r->tp_small, r->gt_small,
           1e3 * r->seconds / (r->images ? r->images : 1));
    if (r->cls_n)
        printf(", mask accuracy %5.1f%% (%d/%d; incorrectly worn called unmasked %d/%d)",
               100.0 * r->cls_ok / r->cls_n, r->cls_ok, r->cls_n, r->inc_unmasked, r->inc_n);
    printf("\n");
}

static const char *find_model(void) {
    const char *env = getenv("NNMASK_MODEL");
    if (env && *env) return uf_file_exists(env) ? env : NULL;
    static char buf[1024];
    const char *src = getenv("NNMASK_SRC") ? getenv("NNMASK_SRC") : ".";
    const char *cands[] = {"runs/mask/model.safetensors", "models/mask.safetensors",
                           "models/model.safetensors"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        snprintf(buf, sizeof buf, "%s/%s", src, cands[i]);
        if (uf_file_exists(buf)) return buf;
    }
    return NULL;
}

static void usage(void) {
    fprintf(stderr,
            "usage: eval_photos [options]\n"
            "  --dir D             photos (default $NNMASK_SHARED/data/photos)\n"
            "  --csv F             annotations (default D/ANNOTATIONS_andrewmvd.csv)\n"
            "  --street            the 342 street photos of $NNMASK_SHARED/data/street\n"
            "  --variant slim|RFB  detector converted from the shared ONNX (default slim)\n"
            "  --detector F        a converted detector instead\n"
            "  --model M           mask classifier (default $NNMASK_MODEL or runs/mask/model.safetensors)\n"
            "  --no-model          detection only\n"
            "  --long N            detector input long side, aspect kept (default 640)\n"
            "  --fixed WxH         a fixed detector input instead (detection only)\n"
            "  --fit resize|letterbox   --threshold T (default 0.6)\n"
            "  --min-recall R --min-precision P --min-mask-accuracy A   (fractions; assert)\n"
            "  --sweep             try several settings, print a table\n"
            "  --raw-boxes         UltraFace's own boxes (no box-convention adjustment)\n"
            "  --verbose           per image counts\n");
}

int main(int argc, char **argv) {
    const char *shared = tu_shared();
    char dir[1024] = "", csv[1200] = "", det_path[1024] = "";
    const char *variant = "slim", *detector = NULL, *model = NULL;
    int no_model = 0, sweep = 0, verbose = 0, street = 0;
    setting st = {0};
    st.long_side = 640;
    st.fit = NN_UF_RESIZE;
    st.threshold = 0.6f;
    double min_recall = -1, min_precision = -1, min_mask = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEXT()                                                      \
    do {                                                            \
        if (!v) {                                                   \
            fprintf(stderr, "eval_photos: %s needs a value\n", a);  \
            return 2;                                               \
        }                                                           \
        i++;                                                        \
    } while (0)
        if (!strcmp(a, "--dir")) { NEXT(); snprintf(dir, sizeof dir, "%s", v); }
        else if (!strcmp(a, "--csv")) { NEXT(); snprintf(csv, sizeof csv, "%s", v); }
        else if (!strcmp(a, "--street")) street = 1;
        else if (!strcmp(a, "--variant")) { NEXT(); variant = v; }
        else if (!strcmp(a, "--detector")) { NEXT(); detector = v; }
        else if (!strcmp(a, "--model")) { NEXT(); model = v; }
        else if (!strcmp(a, "--no-model")) no_model = 1;
        else if (!strcmp(a, "--long")) { NEXT(); st.long_side = atoi(v); }
        else if (!strcmp(a, "--fixed")) {
            NEXT();
            if (sscanf(v, "%dx%d", &st.fixed_w, &st.fixed_h) != 2) { usage(); return 2; }
        }
        else if (!strcmp(a, "--fit")) {
            NEXT();
            st.fit = !strcmp(v, "letterbox") ? NN_UF_LETTERBOX : NN_UF_RESIZE;
        }
        else if (!strcmp(a, "--threshold")) { NEXT(); st.threshold = strtof(v, NULL); }
        else if (!strcmp(a, "--min-recall")) { NEXT(); min_recall = atof(v); }
        else if (!strcmp(a, "--min-precision")) { NEXT(); min_precision = atof(v); }
        else if (!strcmp(a, "--min-mask-accuracy")) { NEXT(); min_mask = atof(v); }
        else if (!strcmp(a, "--sweep")) sweep = 1;
        else if (!strcmp(a, "--verbose")) verbose = 1;
        else if (!strcmp(a, "--raw-boxes")) st.raw_boxes = 1;
        else { usage(); return 2; }
#undef NEXT
    }
    if (!dir[0]) snprintf(dir, sizeof dir, "%s/data/%s", shared, street ? "street/photos" : "photos");
    if (!csv[0])
        {
        if (street) snprintf(csv, sizeof csv, "%s/data/street/ANNOTATIONS.csv", shared);
        else snprintf(csv, sizeof csv, "%s/ANNOTATIONS_andrewmvd.csv", dir);
    }
    if (!uf_file_exists(csv)) {
        printf("SKIP: %s not found (shared data absent; set NNMASK_SHARED)\n", csv);
        return TEST_SKIP_CODE;
    }
    if (!detector) {
        char onnx[1024];
        uf_onnx_path(onnx, sizeof onnx, shared, variant);
        if (!uf_file_exists(onnx)) {
            printf("SKIP: %s not found\n", onnx);
            return TEST_SKIP_CODE;
        }
        if (!uf_python_has("onnx, numpy")) {
            printf("SKIP: %s lacks onnx/numpy to convert the detector (apt-get install "
                   "python3-onnx)\n", uf_python());
            return TEST_SKIP_CODE;
        }
        if (uf_converted(det_path, sizeof det_path, shared, variant)) return 1;
        detector = det_path;
    }
    if (!model && !no_model) model = find_model();
    gt_set gs;
    if (gt_load(&gs, csv)) {
        fprintf(stderr, "eval_photos: %s\n", nn_error());
        return 1;
    }
    nn_threads_set(2);
    st.detector = detector;
    st.model = st.fixed_w ? NULL : model;
    printf("eval_photos: %s (%d photos), detector %s, classifier %s\n", dir, gs.n, detector,
           st.model ? st.model : "none");
    result r;
    if (sweep) {
        static const int longs[] = {320, 480, 640, 800};
        static const float thrs[] = {0.5f, 0.6f, 0.7f};
        for (int fi = 0; fi < 2; fi++)
            for (size_t li = 0; li < sizeof longs / sizeof *longs; li++)
                for (size_t ti = 0; ti < sizeof thrs / sizeof *thrs; ti++) {
                    setting s = st;
                    s.model = NULL;
                    s.fixed_w = 0;
                    s.fit = fi ? NN_UF_LETTERBOX : NN_UF_RESIZE;
                    s.long_side = longs[li];
                    s.threshold = thrs[ti];
                    if (evaluate(&gs, dir, &s, &r, 0)) {
                        fprintf(stderr, "eval_photos: %s\n", nn_error());
                        return 1;
                    }
                    print_result(&s, variant, &r);
                }
        for (size_t ti = 0; ti < sizeof thrs / sizeof *thrs; ti++) {
            setting s = st;
            s.model = NULL;
            s.fixed_w = 320;
            s.fixed_h = 240;
            s.fit = NN_UF_RESIZE;
            s.threshold = thrs[ti];
            if (evaluate(&gs, dir, &s, &r, 0)) {
                fprintf(stderr, "eval_photos: %s\n", nn_error());
                return 1;
            }
            print_result(&s, variant, &r);
        }
        gt_free(&gs);
        return 0;
    }
    if (evaluate(&gs, dir, &st, &r, verbose)) {
        fprintf(stderr, "eval_photos: %s\n", nn_error());
        gt_free(&gs);
        return 1;
    }
    print_result(&st, variant, &r);
    double recall = (double)r.tp / (r.gt ? r.gt : 1), precision = (double)r.tp / (r.det ? r.det : 1);
    if (min_recall >= 0)
        CHECK(recall >= min_recall, "recall %.4f < %.4f", recall, min_recall);
    if (min_precision >= 0)
        CHECK(precision >= min_precision, "precision %.4f < %.4f", precision, min_precision);
    if (min_mask >= 0) {
        if (!st.model) {
            printf("mask accuracy: SKIPPED (no trained classifier: set NNMASK_MODEL or train one "
                   "into runs/mask/model.safetensors)\n");
        } else {
            double acc = (double)r.cls_ok / (r.cls_n ? r.cls_n : 1);
            CHECK(r.cls_n > 0, "no classified matched faces");
            CHECK(acc >= min_mask, "mask accuracy %.4f < %.4f", acc, min_mask);
        }
    }
    gt_free(&gs);
    return test_summary("eval_photos");
}
