/* ultraface.h — the UltraFace face detector (Linzaer's
 * Ultra-Light-Fast-Generic-Face-Detector-1MB, slim-320 and RFB-320) run on
 * nnmask layers, with its priors, box decoding and non-maximum suppression.
 *
 * Weights come from weights/convert_ultraface.py: an nnmask safetensors file
 * with BN folded into the convolutions and the network as a list of ops in
 * the "graph" metadata (conv / depthwise conv with fused ReLU, relu, add,
 * concat; four heads for scores and four for box offsets). The graph is
 * checked against the tensors when the file is loaded.
 *
 * Pipeline of nn_uf_detect() on a frame of any size:
 *   1. fit the frame into the detector input (in_w x in_h, 320x240 by
 *      default; any size >= 32 works): NN_UF_RESIZE stretches it (as the
 *      upstream demo does), NN_UF_LETTERBOX keeps the aspect ratio and pads
 *      with the mean grey; resampled with a triangle filter (antialiased
 *      when shrinking), normalised to (rgb - 127) / 128.
 *   2. forward pass -> scores [P,2] (softmax, column 1 = face) and raw box
 *      offsets [P,4], P = number of priors (4420 at 320x240).
 *   3. priors (cx, cy, w, h), normalised, ordered feature map -> row ->
 *      column -> size; feature maps ceil(in/stride) for strides 8,16,32,64;
 *      cx = (i + .5) / fw, w = min_size / in_w, clamped to [0,1].
 *      decode: cx = px + dx*0.1*pw, w = pw*exp(dw*0.2) (same for y, h).
 *   4. keep score > threshold, at most the 200 best candidates, greedy NMS
 *      at IoU 0.3, adjust the box convention (nn_uf_opts.adjust), map to
 *      frame pixels and clip to the frame.
 * Memory: one arena for parameters, one for activations (reused between
 * tensors whose lifetimes do not overlap), sized when the input size is set;
 * nothing is allocated per frame.
 */
#ifndef NN_ULTRAFACE_H
#define NN_ULTRAFACE_H

#include "nnmask.h"

typedef struct nn_uf nn_uf;

typedef enum { NN_UF_RESIZE, NN_UF_LETTERBOX } nn_uf_fit;

typedef struct {
    float score_threshold;   /* keep faces scoring above this (default 0.7) */
    float iou_threshold;     /* NMS overlap (default 0.3) */
    int candidates;          /* best boxes kept before NMS (default 200) */
    nn_uf_fit fit;           /* default NN_UF_RESIZE */
    /* Box convention: every kept box (cx, cy, w, h) becomes (cx + dx*w,
     * cy + dy*h, w*sw, h*sh) with adjust = {dx, dy, sw, sh}. UltraFace learnt
     * WIDER FACE boxes (forehead included); annotated mask photos (andrewmvd,
     * what the classifier's face crops are cut from) box eyebrows to chin,
     * mask included. Default {0.02, 0.125, 1.04, 0.91}: the median offsets of
     * 988 slim-320 detections from their annotations on the street photos
     * that are not in data/photos. {0, 0, 1, 1} gives the raw boxes. */
    float adjust[4];
} nn_uf_opts;

typedef struct {
    float x0, y0, x1, y1;    /* frame pixels, x1/y1 exclusive */
    float score;             /* face probability */
} nn_uf_box;

void nn_uf_opts_default(nn_uf_opts *o);

/* Loads a converted detector (NULL + nn_error() naming the file and the
 * tensor or op at fault) and prepares it for its native input size. */
nn_uf *nn_uf_load(const char *path);
void nn_uf_free(nn_uf *d);
const char *nn_uf_variant(const nn_uf *d);         /* "slim-320", "RFB-320" */
size_t nn_uf_param_count(const nn_uf *d);
/* Sets the input size (w, h in [32, 4096]); sizes the activation arena
 * (grows only). -1 + error on bad sizes. */
int nn_uf_set_input_size(nn_uf *d, int w, int h);
int nn_uf_input_w(const nn_uf *d);
int nn_uf_input_h(const nn_uf *d);
int nn_uf_num_priors(const nn_uf *d);
/* Bytes held by the parameter and activation arenas. */
size_t nn_uf_memory_bytes(const nn_uf *d);

/* The preprocessed input [1, in_h, in_w, 3] (write into it, then forward). */
float *nn_uf_input(nn_uf *d);
/* Fits a frame into nn_uf_input() (step 1). */
void nn_uf_preprocess(nn_uf *d, const nn_image *frame, nn_uf_fit fit);
/* Runs the network on nn_uf_input(); afterwards nn_uf_scores() [P,2] and
 * nn_uf_offsets() [P,4] hold its two outputs, nn_uf_priors() [P,4]. */
void nn_uf_forward(nn_uf *d);
const float *nn_uf_scores(const nn_uf *d);
const float *nn_uf_offsets(const nn_uf *d);
const float *nn_uf_priors(const nn_uf *d);

/* preprocess + forward + decode + NMS: writes at most `max` faces, best
 * first, into out; returns how many faces were found (may exceed max). */
int nn_uf_detect(nn_uf *d, const nn_image *frame, const nn_uf_opts *o, nn_uf_box *out,
                 int max);
/* Steps 3-4 on the current outputs, boxes in the normalised input
 * coordinates [0,1] (before mapping to a frame). */
int nn_uf_postprocess(nn_uf *d, const nn_uf_opts *o, nn_uf_box *out, int max);

/* ---- building blocks, exposed for tests ---------------------------------- */
/* Priors for an input size; returns their count (priors may be NULL to
 * count). Default UltraFace strides and min sizes. */
int nn_uf_make_priors(float *priors, int in_w, int in_h);
/* raw [n,4] offsets + priors [n,4] -> corner boxes [n,4] (x0,y0,x1,y1). */
void nn_uf_decode(float *boxes, const float *raw, const float *priors, int n, float center_var,
                  float size_var);
float nn_uf_iou(const nn_uf_box *a, const nn_uf_box *b);
/* Greedy NMS: sorts boxes[0..n) by score (descending, stable) and keeps
 * those whose IoU with every kept better box is <= iou; returns the count
 * kept (moved to the front). */
int nn_uf_nms(nn_uf_box *boxes, int n, float iou);
/* Fits an 8-bit RGB frame into dst [dst_h, dst_w, 3] floats (rgb - mean) *
 * scale; for NN_UF_LETTERBOX the unused border is 0. Reports the mapping
 * frame = (input - off) / scale per axis. No allocation. */
void nn_uf_fit_frame(float *dst, int dst_w, int dst_h, const nn_image *frame, nn_uf_fit fit,
                     float mean, float scale, float *off_x, float *off_y, float *scale_x,
                     float *scale_y);
/* A detector input size proportional to a frame: the long side becomes
 * `long_side`, both sides rounded to a multiple of 32 (at least 32). */
void nn_uf_size_for_frame(int frame_w, int frame_h, int long_side, int *w, int *h);

#endif
