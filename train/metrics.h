/* metrics.h — classification scores: accuracy, per-class and macro/weighted
 * precision, recall, F1 with support (scikit-learn's definitions), the
 * confusion matrix, ROC curves and AUC, and the validation-chosen decision
 * threshold; as JSON (cJSON) and as a classification_report-style text.
 *
 * Binary models give probs[i*2+1] = P(class 1); the prediction is class 1
 * when that probability >= threshold. More classes: argmax.
 */
#ifndef NN_TRAIN_METRICS_H
#define NN_TRAIN_METRICS_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "config.h"

typedef struct {
    int n, k;
    float threshold;
    double accuracy, loss;                /* loss: mean cross-entropy */
    double precision[NN_CFG_MAX_CLASSES], recall[NN_CFG_MAX_CLASSES], f1[NN_CFG_MAX_CLASSES];
    int support[NN_CFG_MAX_CLASSES];
    double macro_p, macro_r, macro_f1, weighted_p, weighted_r, weighted_f1;
    int confusion[NN_CFG_MAX_CLASSES][NN_CFG_MAX_CLASSES];   /* [true][predicted] */
    double auc;                           /* binary: of P(class 1); else macro one-vs-rest */
    double class_auc[NN_CFG_MAX_CLASSES]; /* one-vs-rest (binary: both = auc) */
    /* ROC curves: binary 1 curve (class 1 positive), else one per class */
    int n_curves;
    int roc_n[NN_CFG_MAX_CLASSES];
    float *roc_fpr[NN_CFG_MAX_CLASSES], *roc_tpr[NN_CFG_MAX_CLASSES];
} nn_metrics;

int nn_predict_class(const float *probs, int k, float threshold);
/* probs [n,k]; labels [n]. Allocates the ROC curves (nn_metrics_free). */
void nn_metrics_compute(nn_metrics *m, const float *probs, const int *labels, int n, int k,
                        float threshold);
void nn_metrics_free(nn_metrics *m);
/* AUC of scores against binary labels (1 = positive), ties averaged. NAN when
 * one class is absent. */
double nn_auc(const float *scores, const int *pos, int n);
/* Decision threshold for binary probs [n,2] on validation data:
 * NN_THRESH_FIXED returns `fixed`; EQUAL_RECALL the threshold with the two
 * recalls closest; MIN_RECALL the one keeping recall(cls) >= min_recall with
 * the best recall of the other class. */
float nn_threshold_select(const float *probs, const int *labels, int n, nn_thresh_rule rule,
                          float fixed, int cls, float min_recall);
/* {"accuracy","precision","recall","f1" (macro), "weighted_*", "auc",
 *  "threshold", "n", "per_class": {name: {precision, recall, f1, support, auc}},
 *  "confusion": [[...]], "classes": [...], "loss"} */
cJSON *nn_metrics_json(const nn_metrics *m, const char (*classes)[64]);
/* scikit-learn style report, then AUC and the confusion matrix. */
void nn_metrics_report(FILE *f, const nn_metrics *m, const char (*classes)[64], const char *title);

#endif
