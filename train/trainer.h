/* trainer.h — nnmask-train's loop and nnmask-eval's evaluation: data, input
 * pipeline, transfer learning, checkpoints/resume, and the run's outputs
 * (model.safetensors, metrics.json, report.txt, plots). */
#ifndef NN_TRAIN_TRAINER_H
#define NN_TRAIN_TRAINER_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "classifier.h"
#include "config.h"
#include "data.h"

/* Reports of annotated faces add the metrics of the faces at least this big
 * (short side of the box, photo pixels) and a table by face size. */
#define NN_EVAL_MIN_FACE 24

/* Trains as configured; resume continues from out_dir/checkpoint.safetensors.
 * Returns 0, or -1 with nn_error() (after printing progress). */
int nn_train_run(const nn_config *c, int resume);

/* Probabilities [ds->n, n_classes] of every item (cached pixels when
 * present, else decoded here; a file that fails is reported and gets
 * NAN probabilities: ok[i] = 0). shrink > 0: each face is first shrunk to
 * shrink x shrink px (stb_image_resize's filter) and scaled back up to the
 * input size, i.e. seen as a camera that gets it at that size would see it.
 * Returns the number that failed. */
int nn_eval_probs(nn_classifier *clf, const nn_dataset *ds, float *probs, int *ok, int shrink);

/* Metrics over the items with split in split_mask (and ok), overall and per
 * source: writes metrics.json, report.txt (and confusion.png, roc.png when
 * plots) into out_dir. *json (if not NULL) gets the metrics object (caller
 * frees). title names the data, e.g. "test split". The report text also
 * goes to print when not NULL. */
int nn_eval_outputs(const char *out_dir, const nn_classifier *clf, const nn_dataset *ds,
                    const float *probs, const int *ok, int split_mask, int plots,
                    const char *title, cJSON *extra, cJSON **json, FILE *print);

#endif
