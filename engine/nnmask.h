/* nnmask.h — the one public header of the nnmask engine and its layers.
 *
 * ---------------------------------------------------------------------------
 * A short tutorial
 * ---------------------------------------------------------------------------
 * nnmask is a small neural-network engine in plain C. Its model is simple:
 *
 *  1. Memory comes from arenas (nn_arena): one block for parameters, one for
 *     gradients, one for optimizer state, one for activations sized from the
 *     batch, one scratch workspace (im2col). An arena is sized once, then
 *     nn_arena_alloc() hands out 64-byte aligned slices of it. Nothing calls
 *     malloc/free inside a forward or backward pass.
 *
 *  2. A tensor (nn_tensor) is a view: a float pointer into an arena plus an
 *     NHWC shape. Tensors never own memory. Every layer call that combines
 *     tensors checks their shapes and stops with a clear message on a
 *     mismatch (that is a programming error, not a user error).
 *
 *  3. A layer is a pair of plain functions, forward and backward, llm.c
 *     style. Forward writes its output; backward WRITES (=) the gradient of
 *     its input (din, which may be NULL when nobody needs it) and ACCUMULATES
 *     (+=) the gradients of its parameters, so a caller zeroes parameter
 *     gradients once per step.
 *
 *         nn_arena act; nn_arena_init(&act, "activations", 64 << 20);
 *         nn_conv_geom g;
 *         nn_conv_geom_init(&g, 32, 32, 3, 3, 2, 1, NN_PAD_SAME, 0);
 *         nn_tensor x = nn_tensor_alloc(&act, 8, 32, 32, 3);
 *         nn_tensor y = nn_tensor_alloc(&act, 8, g.out_h, g.out_w, 16);
 *         float *ws = nn_arena_floats(&scratch, nn_conv2d_scratch_floats(&g, 8, 3));
 *         nn_conv2d_forward(&y, &x, w, b, &g, NN_ACT_NONE, ws);
 *         ... loss, then backward in reverse order ...
 *         nn_conv2d_backward(NULL, dw, db, &dy, &x, w, &g, ws);
 *
 *  4. Layouts (channel always last, so 1x1 convolutions are plain GEMMs):
 *       activations  [N, H, W, C]
 *       conv2d       weight [KH, KW, Cin, Cout], bias [Cout]
 *       depthwise    weight [KH, KW, C],        bias [C]
 *       dense        weight [In, Out],          bias [Out]
 *       batch norm   gamma, beta, mean, var     [C]
 *
 *  5. Errors a user can cause (files, images, configs) return -1 (or NULL)
 *     and leave a message in nn_error(); the message names the file or the
 *     tensor. Programming errors (shape mismatches) call nn_fatal().
 *
 *  6. Threads: nn_threads_set(n) sizes the OpenMP team and keeps OpenBLAS
 *     single-threaded; large GEMMs are split over the OpenMP team by the
 *     layers, so the two thread pools never fight over the cores. Random numbers come from a
 *     seeded nn_rng, so a run with the same seed is reproducible.
 * ---------------------------------------------------------------------------
 */
#ifndef NNMASK_H
#define NNMASK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===== errors ============================================================ */
const char *nn_error(void);                         /* last error, thread-local */
int nn_set_error(const char *fmt, ...)              /* sets it, returns -1 */
    __attribute__((format(printf, 1, 2)));
void nn_fatal(const char *fmt, ...)                 /* prints, exit(2) */
    __attribute__((format(printf, 1, 2), noreturn));

/* ===== threads =========================================================== */
void nn_threads_set(int n);    /* n <= 0: all cores. Sets OpenMP and OpenBLAS. */
int nn_threads_get(void);

/* ===== seeded random numbers (xoshiro256**) ============================== */
typedef struct { uint64_t s[4]; } nn_rng;
void nn_rng_seed(nn_rng *r, uint64_t seed);
uint64_t nn_rng_u64(nn_rng *r);
uint32_t nn_rng_u32(nn_rng *r);
float nn_rng_uniform(nn_rng *r);                 /* [0, 1) */
float nn_rng_range(nn_rng *r, float lo, float hi);
float nn_rng_normal(nn_rng *r);                  /* mean 0, std 1 */
int nn_rng_int(nn_rng *r, int n);                /* [0, n) */
void nn_rng_shuffle(nn_rng *r, int *a, int n);

/* ===== arenas ============================================================ */
typedef struct {
    char *base;
    size_t size, used, peak;
    const char *name;
} nn_arena;
int nn_arena_init(nn_arena *a, const char *name, size_t bytes); /* -1 on OOM */
void *nn_arena_alloc(nn_arena *a, size_t bytes);  /* 64-aligned; nn_fatal when full */
float *nn_arena_floats(nn_arena *a, size_t n);    /* zeroed */
size_t nn_arena_mark(const nn_arena *a);
void nn_arena_rewind(nn_arena *a, size_t mark);
void nn_arena_reset(nn_arena *a);
void nn_arena_free(nn_arena *a);

/* ===== tensors (float32, NHWC views) ===================================== */
typedef struct {
    float *data;
    int n, h, w, c;
} nn_tensor;
nn_tensor nn_tensor_make(float *data, int n, int h, int w, int c);
nn_tensor nn_tensor_alloc(nn_arena *a, int n, int h, int w, int c);
size_t nn_tensor_numel(const nn_tensor *t);
/* Stops with "what: expected [n,h,w,c], got [...]" unless t matches; -1 = any. */
void nn_tensor_check(const nn_tensor *t, int n, int h, int w, int c, const char *what);
void nn_tensor_check_same(const nn_tensor *a, const nn_tensor *b, const char *what);
void nn_tensor_zero(nn_tensor *t);
void nn_tensor_copy(nn_tensor *dst, const nn_tensor *src);
void nn_tensor_add_inplace(nn_tensor *dst, const nn_tensor *src);   /* dst += src */

/* ===== files ============================================================= */
/* Reads a whole file (at most max_bytes); -1 + error naming the file. */
int nn_file_read(const char *path, uint8_t **data, size_t *len, size_t max_bytes);
/* Opens a regular file of at most max_bytes for reading: its descriptor
 * (O_CLOEXEC) and *len, or -1 + error naming the file (what nn_file_read
 * checks, for readers that take what they need with pread). */
int nn_file_open(const char *path, size_t *len, size_t max_bytes);
/* Writes path.tmp.PID, fsyncs, renames over path: a killed run loses nothing. */
int nn_file_write_atomic(const char *path, const void *data, size_t len);
int nn_mkdir_p(const char *path);

/* ===== images (8-bit RGB) ================================================ */
#define NN_IMAGE_MAX_PIXELS (64u * 1024u * 1024u)   /* larger headers are refused */
typedef struct {
    int w, h;
    uint8_t *rgb;        /* w*h*3 bytes, row-major, malloc'd (freed by nn_image_free) */
} nn_image;
/* JPEG, PNG, BMP, GIF (first frame), WebP; grey, grey+alpha, RGBA, 16-bit
 * become 8-bit RGB. Transparency (RGBA, grey+alpha, palette tRNS, GIF, WebP
 * alpha) is composited over white, so hidden colour under alpha 0 (often black
 * in face crops with a cut-out background) never reaches the network.
 * Truncated or corrupt files, unknown formats and headers over
 * NN_IMAGE_MAX_PIXELS (or with a zero side) are refused with "PATH: reason".
 * EXIF orientation is not applied (as Keras' load_img). */
int nn_image_load(nn_image *img, const char *path);
int nn_image_load_memory(nn_image *img, const uint8_t *buf, size_t len, const char *name);
int nn_image_alloc(nn_image *img, int w, int h);
void nn_image_free(nn_image *img);
/* Resize with a proper filter (stb_image_resize, triangle/area), never nearest. */
int nn_image_resize(nn_image *dst, const nn_image *src, int w, int h);
/* Crop (clamped to the image, replicating edge pixels outside it) and resize. */
int nn_image_crop_resize(nn_image *dst, const nn_image *src, float x0, float y0,
                         float x1, float y1, int w, int h);
/* .png or .jpg/.jpeg by extension; atomic. */
int nn_image_write(const nn_image *img, const char *path, int jpeg_quality);
/* dst[h][w][3] = pixel * scale + offset (e.g. 1/127.5, -1 for [-1,1]). */
void nn_image_to_floats(float *dst, const nn_image *img, float scale, float offset);

/* ===== safetensors ======================================================= */
typedef struct nn_st nn_st;                      /* a read-only file */
#define NN_ST_MAX_DIMS 8
nn_st *nn_st_open(const char *path);             /* NULL + nn_error() */
nn_st *nn_st_open_memory(const uint8_t *buf, size_t len, const char *name); /* copies buf */
void nn_st_close(nn_st *st);
int nn_st_count(const nn_st *st);
const char *nn_st_name(const nn_st *st, int i);
int nn_st_find(const nn_st *st, const char *name);          /* index or -1 */
/* dtype as in the file ("F32", "F16", "BF16", "I64", ...); shape into shape[]. */
int nn_st_info(const nn_st *st, int i, const char **dtype, int *ndim, int64_t *shape);
const char *nn_st_meta(const nn_st *st, const char *key);    /* NULL if absent */
int nn_st_meta_count(const nn_st *st);
const char *nn_st_meta_key(const nn_st *st, int i);
/* Copies tensor `name` into dst as f32 (F32, F16, BF16 converted). Fails,
 * naming the tensor, if it is missing, has another shape, another dtype, or
 * holds a NaN/Inf. ndim/shape give the expected shape. */
int nn_st_read_f32(const nn_st *st, const char *name, float *dst, int ndim,
                   const int64_t *shape);

typedef struct nn_st_writer nn_st_writer;
nn_st_writer *nn_st_writer_new(void);
void nn_st_writer_free(nn_st_writer *w);
int nn_st_writer_meta(nn_st_writer *w, const char *key, const char *value);
/* The data pointer must stay valid until nn_st_writer_save(). */
int nn_st_writer_add_f32(nn_st_writer *w, const char *name, const float *data,
                         int ndim, const int64_t *shape);
int nn_st_writer_save(nn_st_writer *w, const char *path);   /* atomic */

/* ===== layers ============================================================ */
typedef enum { NN_PAD_VALID, NN_PAD_SAME, NN_PAD_EXPLICIT } nn_padding;
typedef enum { NN_ACT_NONE, NN_ACT_RELU, NN_ACT_RELU6 } nn_act;

/* Geometry of a convolution or pooling window. NN_PAD_SAME is TensorFlow's
 * SAME: total pad = max((out-1)*stride + (k-1)*dil + 1 - in, 0), the smaller
 * half on top/left. NN_PAD_EXPLICIT pads `pad` on every side; for asymmetric
 * explicit padding set pad_t/b/l/r by hand and call nn_conv_geom_finish(). */
typedef struct {
    int in_h, in_w, out_h, out_w;
    int kh, kw, stride_h, stride_w, dil_h, dil_w;
    int pad_t, pad_b, pad_l, pad_r;
} nn_conv_geom;
int nn_conv_geom_init(nn_conv_geom *g, int in_h, int in_w, int kh, int kw,
                      int stride, int dilation, nn_padding mode, int pad);
int nn_conv_geom_finish(nn_conv_geom *g);   /* out_h/out_w from the rest */

/* conv2d: in [N,H,W,Cin], w [KH,KW,Cin,Cout], b [Cout] or NULL,
 * out [N,OH,OW,Cout]. 1x1/stride 1/no pad is one GEMM on the input itself;
 * KxK goes through im2col + GEMM in `scratch` (nn_conv2d_scratch_floats()
 * floats, enough for forward and backward). act is fused (inference). */
size_t nn_conv2d_scratch_floats(const nn_conv_geom *g, int n, int cin);
void nn_conv2d_forward(nn_tensor *out, const nn_tensor *in, const float *w,
                       const float *b, const nn_conv_geom *g, nn_act act, float *scratch);
/* dout is the gradient of the conv output before any activation. */
void nn_conv2d_backward(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                        const nn_tensor *in, const float *w, const nn_conv_geom *g,
                        float *scratch);

/* depthwise conv2d (multiplier 1): in [N,H,W,C], w [KH,KW,C], b [C] or NULL,
 * out [N,OH,OW,C]. Direct kernel, never a GEMM per channel. */
void nn_dwconv2d_forward(nn_tensor *out, const nn_tensor *in, const float *w,
                         const float *b, const nn_conv_geom *g, nn_act act);
void nn_dwconv2d_backward(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                          const nn_tensor *in, const float *w, const nn_conv_geom *g);

/* batch norm over N*H*W for each channel C.
 * Training: normalises with batch statistics, saves mean and rstd [C] for
 * backward, updates run_mean/run_var (unbiased) as
 * run = momentum*run + (1-momentum)*batch (Keras convention, e.g. 0.99). */
void nn_batchnorm_forward_train(nn_tensor *out, float *mean, float *rstd,
                                const nn_tensor *in, const float *gamma, const float *beta,
                                float *run_mean, float *run_var, float momentum, float eps);
void nn_batchnorm_backward(nn_tensor *din, float *dgamma, float *dbeta,
                           const nn_tensor *dout, const nn_tensor *in,
                           const float *mean, const float *rstd, const float *gamma);
/* Inference: running statistics, fused activation. */
void nn_batchnorm_forward_infer(nn_tensor *out, const nn_tensor *in, const float *gamma,
                                const float *beta, const float *run_mean,
                                const float *run_var, float eps, nn_act act);
/* Backward of the inference form (frozen statistics, e.g. fine-tuning). */
void nn_batchnorm_backward_infer(nn_tensor *din, float *dgamma, float *dbeta,
                                 const nn_tensor *dout, const nn_tensor *in,
                                 const float *gamma, const float *run_mean,
                                 const float *run_var, float eps);
/* Folds BN into the preceding conv: w laid out [K, C] (output channel last,
 * as conv2d HWIO and depthwise HWC are), b [C] in/out (zeros if no bias). */
void nn_batchnorm_fold(float *w, float *b, size_t k, int c, const float *gamma,
                       const float *beta, const float *mean, const float *var, float eps);

/* activations, elementwise; forward may run in place (out == in). */
void nn_relu_forward(nn_tensor *out, const nn_tensor *in);
void nn_relu_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *in);
void nn_relu6_forward(nn_tensor *out, const nn_tensor *in);
void nn_relu6_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *in);
void nn_sigmoid_forward(nn_tensor *out, const nn_tensor *in);
void nn_sigmoid_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *out);
/* softmax over the last dimension (c), rows = n*h*w. */
void nn_softmax_forward(nn_tensor *out, const nn_tensor *in);
void nn_softmax_backward(nn_tensor *din, const nn_tensor *dout, const nn_tensor *out);

/* residual add: out = a + b; backward writes da = db = dout (either NULL). */
void nn_add_forward(nn_tensor *out, const nn_tensor *a, const nn_tensor *b);
void nn_add_backward(nn_tensor *da, nn_tensor *db, const nn_tensor *dout);

/* channel concat of k tensors with equal N,H,W. */
void nn_concat_forward(nn_tensor *out, const nn_tensor *const *ins, int k);
void nn_concat_backward(nn_tensor *const *dins, int k, const nn_tensor *dout);

/* pooling: global average [N,H,W,C] -> [N,1,1,C]; average pool with a
 * window (padding cells are not counted, as TensorFlow does). */
void nn_gap_forward(nn_tensor *out, const nn_tensor *in);
void nn_gap_backward(nn_tensor *din, const nn_tensor *dout);
void nn_avgpool_forward(nn_tensor *out, const nn_tensor *in, const nn_conv_geom *g);
void nn_avgpool_backward(nn_tensor *din, const nn_tensor *dout, const nn_conv_geom *g);

/* dense: in [N, In] (any tensor with n rows of h*w*c = In), w [In,Out],
 * b [Out] or NULL, out [N,1,1,Out]. */
void nn_dense_forward(nn_tensor *out, const nn_tensor *in, const float *w,
                      const float *b, nn_act act);
void nn_dense_backward(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                       const nn_tensor *in, const float *w);

/* inverted dropout: in training, zero with probability p and scale the rest
 * by 1/(1-p); mask keeps the per-element factor. Identity when !training. */
void nn_dropout_forward(nn_tensor *out, float *mask, const nn_tensor *in, float p,
                        int training, nn_rng *rng);
void nn_dropout_backward(nn_tensor *din, const nn_tensor *dout, const float *mask);

/* losses: return sum_i(w_i * loss_i) / sum_i(w_i) (w NULL = all 1) and write
 * the gradient of that value w.r.t. the logits. Stable for any |logit|. */
float nn_bce_logits(float *dlogits, const float *logits, const float *targets,
                    const float *weights, int n);
/* logits [n,k]; probs [n,k] out (may be NULL); labels in [0,k). */
float nn_softmax_xent(float *dlogits, float *probs, const float *logits,
                      const int *labels, const float *weights, int n, int k);

/* ===== optimizers ======================================================== */
/* Adam with bias correction; t is the 1-based step. weight_decay is
 * decoupled (AdamW): p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p). */
void nn_adam_step(float *p, const float *g, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, long t);
/* SGD with momentum: v = mu*v + g + wd*p; p -= lr * (nesterov ? g + wd*p + mu*v : v). */
void nn_sgd_step(float *p, const float *g, float *v, size_t n, float lr, float momentum,
                 float weight_decay, int nesterov);

/* ===== naive twins (reference kernels for tests and nnmask-bench) ======== */
void nn_conv2d_forward_naive(nn_tensor *out, const nn_tensor *in, const float *w,
                             const float *b, const nn_conv_geom *g, nn_act act);
void nn_conv2d_backward_naive(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                              const nn_tensor *in, const float *w, const nn_conv_geom *g);
void nn_dwconv2d_forward_naive(nn_tensor *out, const nn_tensor *in, const float *w,
                               const float *b, const nn_conv_geom *g, nn_act act);
void nn_dwconv2d_backward_naive(nn_tensor *din, float *dw, float *db,
                                const nn_tensor *dout, const nn_tensor *in,
                                const float *w, const nn_conv_geom *g);
void nn_dense_forward_naive(nn_tensor *out, const nn_tensor *in, const float *w,
                            const float *b, nn_act act);
void nn_batchnorm_forward_infer_naive(nn_tensor *out, const nn_tensor *in,
                                      const float *gamma, const float *beta,
                                      const float *run_mean, const float *run_var,
                                      float eps, nn_act act);

/* ===== drawing (engine/draw.c) =========================================== */
/* In-place drawing on an nn_image for annotated outputs (nnmask-detect
 * --out, nnmask-live). Coordinates are pixels, rectangles half-open
 * [x0,x1) x [y0,y1), everything clipped to the image. Text is
 * stb_easy_font (ASCII; other bytes drawn as '?'), scaled by an integer. */
typedef struct { uint8_t r, g, b; } nn_rgb;
#define NN_RGB_MASK   ((nn_rgb){0, 200, 0})     /* green: face with a mask */
#define NN_RGB_NOMASK ((nn_rgb){230, 0, 0})     /* red: face without a mask */
#define NN_RGB_FACE   ((nn_rgb){0, 120, 255})   /* blue: face, not classified */
void nn_draw_rect(nn_image *img, int x0, int y0, int x1, int y1, nn_rgb c);  /* filled */
void nn_draw_blend_rect(nn_image *img, int x0, int y0, int x1, int y1, nn_rgb c,
                        float alpha);               /* alpha 0..1 over the image */
/* Outline `thickness` pixels wide, drawn inside [x0,x1) x [y0,y1). */
void nn_draw_box(nn_image *img, int x0, int y0, int x1, int y1, int thickness, nn_rgb c);
int nn_draw_text_width(const char *text, int scale);    /* pixels */
int nn_draw_text_height(const char *text, int scale);   /* pixels, all lines */
void nn_draw_text(nn_image *img, int x, int y, const char *text, int scale, nn_rgb fg);
/* Text on a filled background with a small margin; (x, y) is the top-left. */
void nn_draw_label(nn_image *img, int x, int y, const char *text, int scale, nn_rgb fg,
                   nn_rgb bg);
int nn_draw_text_scale(int w, int h);      /* readable scale for an image: 480 px -> 2 */
int nn_draw_box_thickness(int w, int h);   /* >= 2 pixels, grows with the image */
/* A detection: box outline (nn_draw_box_thickness) in c and `label` (e.g.
 * "Mask 97%", may be NULL) in white on c above the box (below or inside
 * when there is no room). Box in pixels, x1/y1 exclusive. */
void nn_draw_face(nn_image *img, float x0, float y0, float x1, float y1,
                  const char *label, nn_rgb c);

/* ===== image I/O additions (appended by the file-formats helper) ======== */
/* In-memory JPEG (libjpeg-turbo; chroma 4:2:0 below quality 90, 4:4:4 from
 * 90), e.g. for JPEG re-compression augmentation. quality 1..100 (<= 0: 95). *out is malloc'd;
 * free() it. Decode with nn_image_load_memory(). */
int nn_image_encode_jpeg(const nn_image *img, int quality, uint8_t **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* NNMASK_H */
