/* classifier.h — a trained mask classifier: MobileNetV2 backbone + head
 * Dense(units, ReLU) -> Dropout -> Dense(1, sigmoid) for 2 classes or
 * Dense(K, softmax) for more; saved as one self-describing safetensors file.
 *
 * File (model.safetensors):
 *   backbone.*            the MobileNetV2 tensors (layers/mobilenetv2.h names)
 *   head.fc1.weight [C, units]   head.fc1.bias [units]
 *   head.fc2.weight [units, O]   head.fc2.bias [O]     (O = 1 or K)
 *   __metadata__: format=nnmask, arch=mobilenetv2-classifier, classes (JSON
 *   array), input_size, alpha, preprocess ("rgb*(1/127.5)-1"), resize
 *   ("squash": the whole image to input_size x input_size; faces come from
 *   nn_face_crop), head_units, dropout, output ("sigmoid"|"softmax"),
 *   threshold, threshold_rule, decision (human-readable rule), bn_eps.
 *
 * Decision: 2 classes -> P(classes[1]) >= threshold ? classes[1] :
 * classes[0]; more -> argmax. Use nn_classifier_decide() everywhere.
 *
 *   nn_classifier *c = nn_classifier_load("runs/mask/model.safetensors");
 *   float probs[n * c->n_classes];
 *   nn_classifier_predict(c, crops, n, probs);    // any sizes, resized here
 *   int k = nn_classifier_decide(c, probs + i * c->n_classes);
 *   printf("%s %.4f\n", c->classes[k], probs[i * c->n_classes + k]);
 */
#ifndef NN_TRAIN_CLASSIFIER_H
#define NN_TRAIN_CLASSIFIER_H

#include "mobilenetv2.h"
#include "nnmask.h"

#define NN_CLF_MAX_CLASSES 8

typedef struct nn_classifier {
    nn_mnv2 *backbone;
    int n_classes;
    char classes[NN_CLF_MAX_CLASSES][64];
    int input_size;
    float alpha;
    int feat;                 /* backbone feature channels (1280) */
    int head_units;
    float dropout;
    int outs;                 /* 1 (sigmoid) or n_classes (softmax) */
    float threshold;          /* on P(classes[1]), 2 classes */
    char threshold_rule[192];  /* how it was chosen, e.g. "equal_recall (validation)" */
    /* head parameters, one contiguous block (n_params floats) */
    float *params;
    size_t n_params;
    float *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    /* inference buffers (nn_classifier_prepare) */
    int max_batch;
    float *x, *pooled, *h, *logits;
} nn_classifier;

/* A new classifier on `backbone` (ownership taken), head initialised with
 * Glorot-uniform weights and zero biases from rng. NULL + nn_error(). */
nn_classifier *nn_classifier_new(nn_mnv2 *backbone, int n_classes, const char (*classes)[64],
                                 int head_units, float dropout, nn_rng *rng);
nn_classifier *nn_classifier_load(const char *path);
/* Writes the model atomically. extra_meta: NULL-terminated key, value pairs. */
int nn_classifier_save(const nn_classifier *c, const char *path, const char *const *extra_meta);
/* The head tensors (head.*) and metadata into an open writer (checkpoints). */
int nn_classifier_write(const nn_classifier *c, nn_st_writer *w);
void nn_classifier_free(nn_classifier *c);
/* Sizes the inference buffers (and the backbone's) for batches <= max_batch. */
int nn_classifier_prepare(nn_classifier *c, int max_batch);
/* Inference only from here on (the apps): the backbone keeps only its folded
 * weights (nn_mnv2_release_params, 9 MB less at alpha 1); the model can no
 * longer be trained, written or saved. */
void nn_classifier_release_params(nn_classifier *c);

/* probs [n, n_classes] from pooled backbone features [n, feat]. */
void nn_classifier_head_probs(nn_classifier *c, const float *pooled, int n, float *probs);
/* x [n,S,S,3] preprocessed (rgb/127.5-1) -> probs; n may exceed max_batch. */
void nn_classifier_predict_floats(nn_classifier *c, const float *x, int n, float *probs);
/* Images of any size (face crops or whole photos): each is resized to
 * input_size x input_size (squash, proper filter), then classified. */
int nn_classifier_predict(nn_classifier *c, const nn_image *imgs, int n, float *probs);
/* Class index for one row of probabilities. */
int nn_classifier_decide(const nn_classifier *c, const float *probs);
/* Human-readable rule, e.g. "without_mask if P(without_mask) >= 0.4120". */
void nn_classifier_rule_text(const nn_classifier *c, char *buf, size_t cap);

/* ---- training the head (train/trainer.c) ---- */
typedef struct {
    int max_batch;
    float *h, *hd, *mask, *logits, *dlogits, *dhd, *dh, *targets;
} nn_head_ws;
int nn_head_ws_init(nn_head_ws *ws, const nn_classifier *c, int max_batch);
void nn_head_ws_free(nn_head_ws *ws);
/* Forward (dropout when training) + loss + backward for one batch:
 * accumulates head gradients into grads (n_params floats, same layout as
 * params), writes dpooled [n, feat] when not NULL, probs [n, n_classes] when
 * not NULL. weights: per-sample loss weights or NULL. Returns the loss. */
float nn_head_train_step(nn_classifier *c, nn_head_ws *ws, const float *pooled, int n,
                         const int *labels, const float *weights, int training, nn_rng *rng,
                         float *grads, float *dpooled, float *probs);

/* He-normal convolution weights, BN identity (gamma 1, beta 0, mean 0,
 * var 1): a backbone to train from scratch (tests, no ImageNet weights). */
int nn_mnv2_init_random_weights(nn_mnv2 *m, nn_rng *rng, const char *tmp_dir);

#endif
