/* plot.h — the run's figures as PNG, drawn with cairo: training curves,
 * confusion matrix, ROC curves, and a labelled image grid (augmentation
 * preview). Files are written atomically; -1 + nn_error() on failure. */
#ifndef NN_TRAIN_PLOT_H
#define NN_TRAIN_PLOT_H

#include "metrics.h"
#include "nnmask.h"

/* Loss (left) and accuracy (right) per epoch, train vs validation. Values
 * that are NAN are not drawn (e.g. no validation split). */
int nn_plot_curves(const char *path, int epochs, const float *train_loss, const float *val_loss,
                   const float *train_acc, const float *val_acc, const char *title);
int nn_plot_confusion(const char *path, const nn_metrics *m, const char (*classes)[64],
                      const char *title);
int nn_plot_roc(const char *path, const nn_metrics *m, const char (*classes)[64], const char *title);
/* n images (any sizes, shown at cell x cell) in `cols` columns with an
 * optional caption under each. */
int nn_plot_image_grid(const char *path, const nn_image *imgs, const char *const *captions, int n,
                       int cols, int cell, const char *title);

#endif
