/* geom.c — convolution / pooling window geometry: TF SAME, VALID and explicit
 * padding (nn_conv_geom_init) and output sizes from hand-set pads (finish). */

#include "nnmask.h"

static int eff_k(int k, int d) { return (k - 1) * d + 1; }

int nn_conv_geom_finish(nn_conv_geom *g) {
    if (g->in_h <= 0 || g->in_w <= 0 || g->kh <= 0 || g->kw <= 0 || g->stride_h <= 0 ||
        g->stride_w <= 0 || g->dil_h <= 0 || g->dil_w <= 0 || g->pad_t < 0 || g->pad_b < 0 ||
        g->pad_l < 0 || g->pad_r < 0)
        return nn_set_error("conv geometry: bad parameters (in %dx%d, k %dx%d, stride %dx%d, "
                            "dilation %dx%d, pads %d,%d,%d,%d)",
                            g->in_h, g->in_w, g->kh, g->kw, g->stride_h, g->stride_w, g->dil_h,
                            g->dil_w, g->pad_t, g->pad_b, g->pad_l, g->pad_r);
    int sh = g->in_h + g->pad_t + g->pad_b - eff_k(g->kh, g->dil_h);
    int sw = g->in_w + g->pad_l + g->pad_r - eff_k(g->kw, g->dil_w);
    if (sh < 0 || sw < 0)
        return nn_set_error("conv geometry: window %dx%d (dilation %d) larger than padded "
                            "input %dx%d",
                            g->kh, g->kw, g->dil_h, g->in_h + g->pad_t + g->pad_b,
                            g->in_w + g->pad_l + g->pad_r);
    g->out_h = sh / g->stride_h + 1;
    g->out_w = sw / g->stride_w + 1;
    return 0;
}

int nn_conv_geom_init(nn_conv_geom *g, int in_h, int in_w, int kh, int kw, int stride,
                      int dilation, nn_padding mode, int pad) {
    g->in_h = in_h;
    g->in_w = in_w;
    g->kh = kh;
    g->kw = kw;
    g->stride_h = g->stride_w = stride;
    g->dil_h = g->dil_w = dilation;
    g->pad_t = g->pad_b = g->pad_l = g->pad_r = 0;
    g->out_h = g->out_w = 0;
    if (stride <= 0 || dilation <= 0 || in_h <= 0 || in_w <= 0 || kh <= 0 || kw <= 0)
        return nn_conv_geom_finish(g); /* reports the bad parameter */
    if (mode == NN_PAD_SAME) {
        int oh = (in_h + stride - 1) / stride, ow = (in_w + stride - 1) / stride;
        int th = (oh - 1) * stride + eff_k(kh, dilation) - in_h;
        int tw = (ow - 1) * stride + eff_k(kw, dilation) - in_w;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        g->pad_t = th / 2;
        g->pad_b = th - th / 2;
        g->pad_l = tw / 2;
        g->pad_r = tw - tw / 2;
    } else if (mode == NN_PAD_EXPLICIT) {
        if (pad < 0) return nn_set_error("conv geometry: negative padding %d", pad);
        g->pad_t = g->pad_b = g->pad_l = g->pad_r = pad;
    } else if (mode != NN_PAD_VALID) {
        return nn_set_error("conv geometry: unknown padding mode %d", (int)mode);
    }
    return nn_conv_geom_finish(g);
}
