/* augment.h — training-time image augmentation: the reference notebook's
 * Keras ImageDataGenerator transforms (rotation, zoom, shifts, shear, flip,
 * brightness, fill mode) as one projective warp with bilinear sampling, plus
 * camera-realistic ones (perspective, crop-box jitter, colour jitter,
 * greyscale, gaussian and motion blur, down-scaling to a small face size with
 * sensor noise and JPEG compression at that size, then back up).
 * All randomness comes from the caller's nn_rng: same seed, same pixels. */
#ifndef NN_TRAIN_AUGMENT_H
#define NN_TRAIN_AUGMENT_H

#include "config.h"
#include "nnmask.h"

/* out (allocated here, size x size) = augmented src. src holds the
 * classifier's crop enlarged by `ctx` (1 = exactly the crop); its centre
 * 1/ctx is what the model sees without augmentation. With augmentation
 * disabled it is just that centre, resampled to size. */
int nn_augment(nn_image *out, const nn_image *src, float ctx, int size, const nn_config *c,
               nn_rng *rng);
/* A per-sample generator from (seed, epoch, index): order-independent. */
void nn_augment_rng(nn_rng *r, uint64_t seed, int epoch, int index);

#endif
