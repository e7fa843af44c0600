/* pipeline.h — one video frame through nnmask: find the faces (UltraFace),
 * cut each out with the one crop policy (nn_face_crop), classify all crops
 * in one batch, and draw boxes and labels. nnmask-live runs it on every
 * frame, nnmask-detect on every photo; nnmask-bench times it
 * (nn_pipeline_timing()).
 *
 *   nn_pipe_opts o; nn_pipe_opts_default(&o);
 *   o.detector = "weights/ultraface-slim-320.safetensors";
 *   o.classifier = "runs/mask/model.safetensors";     (NULL: detector only)
 *   nn_pipeline *p = nn_pipeline_new(&o);
 *   for each frame:
 *       int n = nn_pipeline_run(p, &frame);           (-1 + nn_error())
 *       const nn_pipe_face *f = nn_pipeline_faces(p);
 *       nn_pipeline_draw(p, &frame);
 *
 * Without a classifier every face is labelled "face" (probability -1) and
 * drawn in NN_RGB_FACE. With one, the label is the classifier's class name;
 * "masked" tells which classes mean a mask is worn properly (a class name
 * starting with "with_mask" or "mask"; "without_mask" and
 * "mask_weared_incorrect" count as unmasked).
 * Buffers for max_faces crops are sized once; a frame allocates only the
 * temporary crop images.
 *
 * Timing end to end, as nnmask-live does it (--stats): reading/decoding a
 * frame (apps/live/source.h, meson dependency live_sources_dep in
 * apps/meson.build: nn_source_open() + s->read()), nn_pipeline_run(),
 * nn_pipeline_draw(); nn_pipeline_timing() splits the last two by stage.
 */
#ifndef NN_PIPELINE_H
#define NN_PIPELINE_H

#include "nnmask.h"
#include "ultraface.h"

typedef struct {
    float x0, y0, x1, y1;   /* frame pixels, x1/y1 exclusive */
    float score;            /* detector face score */
    int cls;                /* class index, -1 = not classified */
    const char *label;      /* class name, or "face" */
    float prob;             /* probability of cls, -1 when not classified */
    int masked;             /* 1 mask worn, 0 no (or badly worn) mask, -1 unknown */
} nn_pipe_face;

typedef struct {
    double detect_s;    /* preprocess + forward + decode + NMS */
    double crop_s;      /* cropping + preprocessing the faces */
    double classify_s;  /* one batched classifier forward */
    double draw_s;      /* nn_pipeline_draw */
    int faces;          /* faces in the frame */
} nn_pipe_timing;

typedef struct {
    const char *detector;     /* converted UltraFace safetensors (required) */
    const char *classifier;   /* trained mask classifier, or NULL */
    nn_uf_opts det;           /* thresholds (nn_uf_opts_default) */
    int det_long_side;        /* detector input long side (default 320): the
                                 input follows the frame's aspect ratio */
    int max_faces;            /* faces kept per frame, best first (default 32) */
    int threads;              /* nn_threads_set(); 0 = leave as is */
} nn_pipe_opts;

typedef struct nn_pipeline nn_pipeline;

void nn_pipe_opts_default(nn_pipe_opts *o);
nn_pipeline *nn_pipeline_new(const nn_pipe_opts *o);   /* NULL + nn_error() */
void nn_pipeline_free(nn_pipeline *p);
int nn_pipeline_has_classifier(const nn_pipeline *p);
/* Detects and classifies; returns the number of faces (<= max_faces). */
int nn_pipeline_run(nn_pipeline *p, const nn_image *frame);
const nn_pipe_face *nn_pipeline_faces(const nn_pipeline *p, int *n);
/* Counts of the last frame's faces by nn_pipe_face.masked. */
void nn_pipeline_counts(const nn_pipeline *p, int *masked, int *unmasked, int *unknown);
/* Draws the last run's faces on frame (the frame that was run). */
void nn_pipeline_draw(nn_pipeline *p, nn_image *frame);

/* Where the apps find their default models. The detector: $NNMASK_DETECTOR,
 * else the first ultraface-RFB-320.safetensors in $NNMASK_MODELS, models/ or
 * weights/, else the first ultraface-slim-320.safetensors there; NULL when
 * there is none. The classifier: the camera model
 * (train/configs/camera.ini) camera.safetensors in $NNMASK_MODELS or models/;
 * NULL when there is none. Each returned path stays valid until the next call
 * of the same function. */
const char *nn_pipeline_default_detector(void);
const char *nn_pipeline_default_classifier(void);
/* Per-stage seconds of the last nn_pipeline_run + nn_pipeline_draw. */
const nn_pipe_timing *nn_pipeline_timing(const nn_pipeline *p);
/* "Mask 97%", "No Mask 88%", "face 0.93": the on-screen text of a face. */
void nn_pipe_face_text(const nn_pipe_face *f, char *buf, size_t cap);
nn_rgb nn_pipe_face_color(const nn_pipe_face *f);
/* 1 for a class name meaning a mask is worn ("with_mask", "mask"), 0 for
 * none or badly worn ("without_mask", "no_mask", "mask_weared_incorrect"),
 * -1 for anything else. */
int nn_pipe_class_masked(const char *name);

#endif
