/* dense.c — fully connected layer: in [N, In] (any NHWC view with n rows),
 * w [In, Out], out [N,1,1,Out]; GEMM forward/backward, fused bias + act. */

#include "layers_internal.h"


void nn_dense_forward(nn_tensor *out, const nn_tensor *in, const float *w, const float *b,
                      nn_act act) {
    nn_tensor_check(in, -1, -1, -1, -1, "nn_dense_forward: in");
    nn_tensor_check(out, in->n, 1, 1, -1, "nn_dense_forward: out");
    if (!w) nn_fatal("nn_dense_forward: weight is NULL");
    const int N = in->n, In = in->h * in->w * in->c, Out = out->c;
    nn__sgemm(0, 0, N, Out, In, in->data, In, w, Out, 0.f, out->data, Out);
    nn__bias_act(out->data, (size_t)N, Out, b, act);
}

void nn_dense_backward(nn_tensor *din, float *dw, float *db, const nn_tensor *dout,
                       const nn_tensor *in, const float *w) {
    /* dout [N,1,1,Out]; dw [In,Out] +=; db [Out] +=; din like in (=) */
    nn_tensor_check(in, -1, -1, -1, -1, "nn_dense_backward: in");
    nn_tensor_check(dout, in->n, 1, 1, -1, "nn_dense_backward: dout");
    if (din) nn_tensor_check_same(in, din, "nn_dense_backward: din");
    const int N = in->n, In = in->h * in->w * in->c, Out = dout->c;
    if (db) nn__colsum_acc(db, dout->data, (size_t)N, Out);
    if (dw)
        nn__sgemm(1, 0, In, Out, N, in->data, In, dout->data, Out, 1.f, dw, Out);
    if (din) {
        if (!w) nn_fatal("nn_dense_backward: weight is NULL");
        nn__sgemm(0, 1, N, In, Out, dout->data, Out, w, Out, 0.f, din->data, In);
    }
}
