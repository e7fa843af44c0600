/* bn_fused.h — batch-norm training passes fused with the activation (internal,
 * used by the MobileNetV2 training path; implemented in batchnorm.c). */
#ifndef NN_BN_FUSED_H
#define NN_BN_FUSED_H

#include "nnmask.h"

/* nn_batchnorm_forward_train with act (NONE, RELU, RELU6) applied to out in
 * the same pass (bit-identical to BN then the activation). */
void nn__batchnorm_forward_train_act(nn_tensor *out, float *mean, float *rstd, const nn_tensor *in,
                                     const float *gamma, const float *beta, float *run_mean,
                                     float *run_var, float momentum, float eps, nn_act act);

#endif
