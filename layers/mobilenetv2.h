/* mobilenetv2.h — the MobileNetV2 backbone built from nnmask layers.
 *
 * Stages (the unit of "freeze" and "fine-tune the last N blocks"):
 *   stage 0        stem: conv 3x3 stride 2 -> BN -> ReLU6
 *   stages 1..17   inverted-residual blocks 0..16 (Keras expanded_conv,
 *                  block_1 .. block_16): [1x1 expand -> BN -> ReLU6]
 *                  (absent in block 0) -> 3x3 depthwise -> BN -> ReLU6 ->
 *                  1x1 project -> BN -> (+ input when stride 1 and Cin == Cout)
 *   stage 18       last 1x1 conv to 1280 (or 1280*alpha when alpha > 1) -> BN -> ReLU6
 * then global average pooling -> pooled features [N, C], and optionally the
 * 1001-way ImageNet logits layer (dense 1280 -> 1001, index 0 = background).
 *
 * Tensor names in nnmask safetensors files (prefix "" for a backbone file,
 * "backbone." inside a trained classifier):
 *   stem.weight [3,3,3,C0]            stem.bn.{gamma,beta,mean,var}
 *   block{i}.expand.weight [1,1,Cin,Cexp]   block{i}.expand.bn.*   (i = 1..16)
 *   block{i}.dw.weight [3,3,Cexp]           block{i}.dw.bn.*       (i = 0..16)
 *   block{i}.project.weight [1,1,Cexp,Cout] block{i}.project.bn.*
 *   last.weight [1,1,C,1280]          last.bn.*
 *   logits.weight [1280,1001]         logits.bias [1001]             (optional)
 * Metadata: format=nnmask, arch=mobilenetv2, alpha, input_size,
 *   preprocess="rgb*(1/127.5)-1", bn_eps=0.001, source, source_sha256.
 */
#ifndef NN_MOBILENETV2_H
#define NN_MOBILENETV2_H

#include "nnmask.h"

#define NN_MNV2_STAGES 19

typedef struct nn_mnv2 nn_mnv2;

/* alpha in {0.35, 0.5, 0.75, 1.0, 1.3, 1.4}; input_size a multiple of 32 in
 * [96, 224]; with_logits allocates the ImageNet head. NULL + nn_error(). */
nn_mnv2 *nn_mnv2_new(float alpha, int input_size, int with_logits);
void nn_mnv2_free(nn_mnv2 *m);
/* Reads every tensor (with `prefix`) and checks its shape; on failure the
 * error names the tensor. Reads logits.* too when with_logits. */
int nn_mnv2_load(nn_mnv2 *m, const nn_st *st, const char *prefix);
/* Opens a file, reads alpha/input_size from its metadata, creates and loads. */
nn_mnv2 *nn_mnv2_load_file(const char *path, int with_logits);
int nn_mnv2_save(const nn_mnv2 *m, nn_st_writer *w, const char *prefix);
int nn_mnv2_feature_channels(const nn_mnv2 *m);   /* 1280 for alpha <= 1 */
int nn_mnv2_feature_size(const nn_mnv2 *m);       /* input_size / 32 */
int nn_mnv2_input_size(const nn_mnv2 *m);
float nn_mnv2_alpha(const nn_mnv2 *m);

/* Inference: BN folded into the convolutions, activations fused. Sizes the
 * activation arena for max_batch; call again after changing the weights. */
int nn_mnv2_prepare_infer(nn_mnv2 *m, int max_batch);
/* x [n,S,S,3] preprocessed to [-1,1]; pooled [n,C]; fmap [n,S/32,S/32,C] or
 * NULL; logits [n,1001] or NULL (needs with_logits). */
void nn_mnv2_infer(nn_mnv2 *m, const float *x, int n, float *pooled, float *fmap,
                   float *logits);

/* Training: stages >= train_from (0..19; 19 = nothing) are trainable and keep
 * BN as a layer; earlier stages run folded, like inference. bn_train = 1
 * uses batch statistics (and updates the running ones), 0 keeps the running
 * statistics (Keras' frozen-BN fine-tuning). */
int nn_mnv2_prepare_train(nn_mnv2 *m, int max_batch, int train_from, int bn_train);
void nn_mnv2_train_forward(nn_mnv2 *m, const float *x, int n, float *pooled);
/* dpooled [n,C]: gradient of the loss w.r.t. pooled features. Accumulates
 * into the parameter gradients of the trainable stages. */
void nn_mnv2_train_backward(nn_mnv2 *m, const float *dpooled, int n);
/* The trainable parameters and their gradients are one contiguous span each
 * (parameters live in one allocation, in stage order). Returns the count. */
size_t nn_mnv2_trainable(nn_mnv2 *m, float **params, float **grads);
void nn_mnv2_zero_grad(nn_mnv2 *m);
/* Bytes held by the parameter/gradient/activation/scratch/folded arenas. */
size_t nn_mnv2_memory_bytes(const nn_mnv2 *m);
/* Inference only from here on: folds BN into the cached inference copy and
 * frees the unfolded parameters and any training buffers (9 MB at alpha 1,
 * a third of a batch-1 process). Afterwards prepare_infer, infer, the shape
 * queries and free work; load, save, training calls and nn_mnv2_tensor exit
 * with a message (a programming error). No-op with ImageNet logits. */
void nn_mnv2_release_params(nn_mnv2 *m);

/* ===== additions (MobileNetV2 helper) ==================================== */
/* The ImageNet preprocessing of nnmask-predict --imagenet and the tests:
 * the largest centred square of img, resized (nn_image_crop_resize, a
 * proper filter) to size x size, then rgb*(1/127.5)-1 into dst
 * [size,size,3]. -1 + nn_error() on failure. */
int nn_mnv2_preprocess_center(const nn_image *img, int size, float *dst);
/* The tensor `name` as in the file without prefix ("block3.dw.weight",
 * "last.bn.var", "logits.bias"): its data and element count, and while it is
 * trainable (after nn_mnv2_prepare_train) its gradient, else *grad = NULL.
 * NULL for an unknown name. Within the parameter allocation each stage holds,
 * per conv, weight then bn.gamma then bn.beta; bn.mean/var follow all stages. */
float *nn_mnv2_tensor(nn_mnv2 *m, const char *name, size_t *count, float **grad);

#endif
