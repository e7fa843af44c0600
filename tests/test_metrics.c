/* test_metrics.c — classification metrics against hand-computed (scikit-learn
 * convention) values: confusion, precision/recall/F1, AUC with ties, ROC
 * curve ends, threshold selection on validation data, JSON fields. */

#include <string.h>

#include "metrics.h"
#include "nnmask.h"
#include "testutil.h"

int main(void) {
    const char cls[3][64] = {"with_mask", "without_mask", "incorrect"};
    /* binary */
    int lab[8] = {0, 0, 1, 1, 1, 0, 1, 0};
    float p1[8] = {0.1f, 0.6f, 0.8f, 0.4f, 0.9f, 0.2f, 0.7f, 0.3f};
    float pr[16];
    for (int i = 0; i < 8; i++) pr[2 * i] = 1 - p1[i], pr[2 * i + 1] = p1[i];
    nn_metrics m;
    nn_metrics_compute(&m, pr, lab, 8, 2, 0.5f);
    CHECK(m.confusion[0][0] == 3 && m.confusion[0][1] == 1 && m.confusion[1][0] == 1 && m.confusion[1][1] == 3,
          "confusion %d %d %d %d", m.confusion[0][0], m.confusion[0][1], m.confusion[1][0], m.confusion[1][1]);
    CHECK_CLOSE(m.accuracy, 0.75, 1e-12, "accuracy");
    CHECK_CLOSE(m.precision[0], 0.75, 1e-12, "precision0");
    CHECK_CLOSE(m.recall[1], 0.75, 1e-12, "recall1");
    CHECK_CLOSE(m.macro_f1, 0.75, 1e-12, "macro f1");
    CHECK(m.support[0] == 4 && m.support[1] == 4, "support");
    CHECK_CLOSE(m.auc, 15.0 / 16.0, 1e-12, "auc");
    CHECK(m.n_curves == 1 && m.roc_fpr[0][0] == 0 && m.roc_tpr[0][0] == 0 &&
              m.roc_fpr[0][m.roc_n[0] - 1] == 1 && m.roc_tpr[0][m.roc_n[0] - 1] == 1,
          "roc ends");
    /* mean cross-entropy */
    double ce = 0;
    for (int i = 0; i < 8; i++) ce -= log(lab[i] ? p1[i] : 1 - p1[i]);
    CHECK_CLOSE(m.loss, ce / 8, 1e-6, "loss");
    /* a higher threshold: class 1 only when p >= 0.75 */
    nn_metrics_free(&m);
    nn_metrics_compute(&m, pr, lab, 8, 2, 0.75f);
    CHECK(m.confusion[1][1] == 2 && m.confusion[0][1] == 0, "threshold 0.75");
    CHECK_CLOSE(m.precision[1], 1.0, 1e-12, "precision at 0.75");
    CHECK_CLOSE(m.recall[1], 0.5, 1e-12, "recall at 0.75");
    CHECK_CLOSE(m.f1[1], 2 * 0.5 / 1.5, 1e-12, "f1 at 0.75");
    CHECK_CLOSE(m.weighted_r, 0.75, 1e-12, "weighted recall");
    cJSON *js = nn_metrics_json(&m, cls);
    CHECK(cJSON_GetObjectItem(js, "accuracy") && cJSON_GetObjectItem(js, "precision") &&
              cJSON_GetObjectItem(js, "recall") && cJSON_GetObjectItem(js, "f1") && cJSON_GetObjectItem(js, "auc") &&
              cJSON_GetObjectItem(js, "per_class") && cJSON_GetObjectItem(js, "confusion"),
          "json fields");
    const cJSON *pc = cJSON_GetObjectItem(cJSON_GetObjectItem(js, "per_class"), "without_mask");
    CHECK(pc && cJSON_GetObjectItem(pc, "support")->valueint == 4, "json per_class support");
    cJSON_Delete(js);
    nn_metrics_free(&m);

    /* zero division: a class never predicted has precision 0 */
    float allneg[8];
    for (int i = 0; i < 4; i++) allneg[2 * i] = 0.9f, allneg[2 * i + 1] = 0.1f;
    int lab4[4] = {0, 1, 0, 1};
    nn_metrics_compute(&m, allneg, lab4, 4, 2, 0.5f);
    CHECK(m.precision[1] == 0 && m.recall[1] == 0 && m.f1[1] == 0, "zero division");
    CHECK_CLOSE(m.auc, 0.5, 1e-12, "auc of ties");
    nn_metrics_free(&m);

    /* AUC directly, with ties and a missing class */
    float s[5] = {0.3f, 0.3f, 0.8f, 0.1f, 0.3f};
    int pos[5] = {1, 0, 1, 0, 0};
    /* positives 0.3 (vs 0.3 tie x2 -> 1, vs 0.1 -> 1) = 2, 0.8 -> 3; total 5/6 */
    CHECK_CLOSE(nn_auc(s, pos, 5), 5.0 / 6.0, 1e-12, "auc with ties");
    int none[5] = {0, 0, 0, 0, 0};
    CHECK(isnan(nn_auc(s, none, 5)), "auc without positives is NAN");

    /* three classes: argmax, macro averages */
    float p3[12] = {0.7f, 0.2f, 0.1f, 0.1f, 0.8f, 0.1f, 0.2f, 0.3f, 0.5f, 0.5f, 0.4f, 0.1f};
    int l3[4] = {0, 1, 2, 2};
    nn_metrics_compute(&m, p3, l3, 4, 3, 0.5f);
    CHECK(m.confusion[2][0] == 1 && m.confusion[2][2] == 1, "3-class confusion");
    CHECK_CLOSE(m.accuracy, 0.75, 1e-12, "3-class accuracy");
    CHECK_CLOSE(m.macro_r, (1 + 1 + 0.5) / 3, 1e-12, "3-class macro recall");
    CHECK_CLOSE(m.macro_p, (0.5 + 1 + 1) / 3, 1e-12, "3-class macro precision");
    CHECK(m.n_curves == 3, "3 roc curves");
    nn_metrics_free(&m);

    /* threshold selection */
    int lv[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    float sv[8] = {0.05f, 0.1f, 0.2f, 0.25f, 0.35f, 0.5f, 0.6f, 0.9f};
    float pv[16];
    for (int i = 0; i < 8; i++) pv[2 * i] = 1 - sv[i], pv[2 * i + 1] = sv[i];
    float t = nn_threshold_select(pv, lv, 8, NN_THRESH_EQUAL_RECALL, 0.5f, -1, 0);
    CHECK(t > 0.25f && t <= 0.35f, "equal recall threshold %g", t);
    CHECK(nn_threshold_select(pv, lv, 8, NN_THRESH_FIXED, 0.42f, -1, 0) == 0.42f, "fixed");
    /* overlap: keep recall of class 1 >= 1.0 -> threshold below its lowest score */
    float so[8] = {0.05f, 0.4f, 0.2f, 0.7f, 0.3f, 0.5f, 0.6f, 0.9f};
    for (int i = 0; i < 8; i++) pv[2 * i] = 1 - so[i], pv[2 * i + 1] = so[i];
    t = nn_threshold_select(pv, lv, 8, NN_THRESH_MIN_RECALL, 0.5f, 1, 1.0f);
    CHECK(t <= 0.3f && t > 0.2f, "min recall class 1 threshold %g", t);
    t = nn_threshold_select(pv, lv, 8, NN_THRESH_MIN_RECALL, 0.5f, 0, 1.0f);
    CHECK(t > 0.7f && t <= 0.9f, "min recall class 0 threshold %g", t);
    return test_summary("test_metrics");
}
