/* facecrop.h — how nnmask cuts a face out of a photo for the classifier:
 * the ONE policy shared by training on annotated photos (train/data.c) and by
 * the detector apps (nnmask-detect, nnmask-live), so both see the same crops.
 *
 * Policy: the box (x0,y0)-(x1,y1) (pixels, x1/y1 exclusive) is squared
 * around its centre to its longer side, then enlarged by NN_FACE_MARGIN
 * (side * (1 + NN_FACE_MARGIN)), cut out with edge pixels replicated outside
 * the photo, and resized with a proper filter (area when shrinking, bilinear
 * when enlarging) to size x size. The margin keeps chin, forehead and the
 * mask's edges in view, like the face crops of the class-folder datasets.
 */
#ifndef NN_FACECROP_H
#define NN_FACECROP_H

#include "nnmask.h"

#define NN_FACE_MARGIN 0.25f

/* The square crop box of a face box, enlarged by a further factor `scale`
 * (1 = the classifier's crop; > 1 adds context for augmentation). */
void nn_face_square(float out[4], float x0, float y0, float x1, float y1, float scale);
/* dst becomes size x size, newly allocated, as nn_image_resize does (dst may
 * be src: its old pixels are then freed). -1 + nn_error() on an
 * empty/non-finite box. */
int nn_face_crop(nn_image *dst, const nn_image *src, float x0, float y0, float x1, float y1,
                 int size);

#endif
