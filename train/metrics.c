/* metrics.c — accuracy, precision/recall/F1, confusion matrix, ROC/AUC,
 * threshold selection on validation data, metrics.json and report.txt text. */

#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nnmask.h"

int nn_predict_class(const float *probs, int k, float threshold) {
    if (k == 2) return probs[1] >= threshold ? 1 : 0;
    int best = 0;
    for (int c = 1; c < k; c++)
        if (probs[c] > probs[best]) best = c;
    return best;
}

typedef struct {
    float s;
    int pos;
} scored;

static int cmp_scored_desc(const void *a, const void *b) {
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return x > y ? -1 : x < y ? 1 : 0;
}

/* Sorted copy (descending score). */
static scored *sort_scores(const float *scores, const int *pos, int n, int *np, int *nn) {
    scored *v = malloc(((size_t)n + 1) * sizeof *v);
    if (!v) nn_fatal("out of memory");
    *np = *nn = 0;
    for (int i = 0; i < n; i++) {
        v[i].s = scores[i];
        v[i].pos = pos[i] != 0;
        if (v[i].pos) (*np)++;
        else (*nn)++;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_scored_desc);
    return v;
}

double nn_auc(const float *scores, const int *pos, int n) {
    int np, nneg;
    scored *v = sort_scores(scores, pos, n, &np, &nneg);
    if (!np || !nneg) {
        free(v);
        return NAN;
    }
    /* Mann-Whitney: for each positive, count negatives ranked below + ties/2. */
    double sum = 0;
    int neg_after = nneg; /* negatives with a strictly lower score than the current group */
    for (int i = 0; i < n;) {
        int j = i, gp = 0, gn = 0;
        while (j < n && v[j].s == v[i].s) {
            if (v[j].pos) gp++;
            else gn++;
            j++;
        }
        neg_after -= gn;
        sum += gp * (neg_after + 0.5 * gn);
        i = j;
    }
    free(v);
    return sum / ((double)np * nneg);
}

/* ROC points from the highest threshold down: (0,0) ... (1,1). */
static void roc_curve(const float *scores, const int *pos, int n, float **fpr, float **tpr, int *m) {
    int np, nneg;
    scored *v = sort_scores(scores, pos, n, &np, &nneg);
    *fpr = malloc(((size_t)n + 2) * sizeof(float));
    *tpr = malloc(((size_t)n + 2) * sizeof(float));
    if (!*fpr || !*tpr) nn_fatal("out of memory");
    int k = 0, tp = 0, fp = 0;
    (*fpr)[k] = 0;
    (*tpr)[k++] = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].s == v[i].s) {
            if (v[j].pos) tp++;
            else fp++;
            j++;
        }
        (*fpr)[k] = nneg ? (float)fp / nneg : 0.f;
        (*tpr)[k++] = np ? (float)tp / np : 0.f;
        i = j;
    }
    *m = k;
    free(v);
}

void nn_metrics_free(nn_metrics *m) {
    for (int c = 0; c < m->n_curves; c++) {
        free(m->roc_fpr[c]);
        free(m->roc_tpr[c]);
    }
    m->n_curves = 0;
}

void nn_metrics_compute(nn_metrics *m, const float *probs, const int *labels, int n, int k,
                        float threshold) {
    memset(m, 0, sizeof *m);
    m->n = n;
    m->k = k;
    m->threshold = threshold;
    double loss = 0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        int p = nn_predict_class(probs + (size_t)i * k, k, threshold);
        m->confusion[labels[i]][p]++;
        if (p == labels[i]) correct++;
        loss -= log(fmax(probs[(size_t)i * k + labels[i]], 1e-7));
    }
    m->accuracy = n ? (double)correct / n : NAN;
    m->loss = n ? loss / n : NAN;
    int present = 0;
    for (int c = 0; c < k; c++) {
        int tp = m->confusion[c][c], pred = 0, sup = 0;
        for (int r = 0; r < k; r++) pred += m->confusion[r][c];
        for (int q = 0; q < k; q++) sup += m->confusion[c][q];
        m->support[c] = sup;
        /* scikit-learn: 0 when undefined (zero_division=0) */
        m->precision[c] = pred ? (double)tp / pred : 0.0;
        m->recall[c] = sup ? (double)tp / sup : 0.0;
        double pr = m->precision[c] + m->recall[c];
        m->f1[c] = pr > 0 ? 2 * m->precision[c] * m->recall[c] / pr : 0.0;
        m->macro_p += m->precision[c];
        m->macro_r += m->recall[c];
        m->macro_f1 += m->f1[c];
        m->weighted_p += m->precision[c] * sup;
        m->weighted_r += m->recall[c] * sup;
        m->weighted_f1 += m->f1[c] * sup;
        if (sup) present++;
    }
    m->macro_p /= k;
    m->macro_r /= k;
    m->macro_f1 /= k;
    if (n) {
        m->weighted_p /= n;
        m->weighted_r /= n;
        m->weighted_f1 /= n;
    }
    (void)present;
    /* ROC / AUC */
    float *s = malloc(((size_t)n + 1) * sizeof *s);
    int *pos = malloc(((size_t)n + 1) * sizeof *pos);
    if (!s || !pos) nn_fatal("out of memory");
    int curves = k == 2 ? 1 : k;
    double auc_sum = 0;
    int auc_cnt = 0;
    for (int c = 0; c < curves; c++) {
        int cls = k == 2 ? 1 : c;
        for (int i = 0; i < n; i++) {
            s[i] = probs[(size_t)i * k + cls];
            pos[i] = labels[i] == cls;
        }
        double a = nn_auc(s, pos, n);
        roc_curve(s, pos, n, &m->roc_fpr[c], &m->roc_tpr[c], &m->roc_n[c]);
        if (k == 2) {
            m->class_auc[0] = m->class_auc[1] = a;
        } else {
            m->class_auc[c] = a;
        }
        if (!isnan(a)) {
            auc_sum += a;
            auc_cnt++;
        }
    }
    m->n_curves = curves;
    m->auc = auc_cnt ? auc_sum / auc_cnt : NAN;
    free(s);
    free(pos);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

float nn_threshold_select(const float *probs, const int *labels, int n, nn_thresh_rule rule,
                          float fixed, int cls, float min_recall) {
    if (rule == NN_THRESH_FIXED || n == 0) return fixed;
    int n0 = 0, n1 = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i]) n1++;
        else n0++;
    }
    if (!n0 || !n1) return fixed;
    /* candidates: midpoints between consecutive distinct scores */
    float *p = malloc(((size_t)n + 1) * sizeof *p);
    if (!p) nn_fatal("out of memory");
    for (int i = 0; i < n; i++) p[i] = probs[(size_t)i * 2 + 1];
    qsort(p, (size_t)n, sizeof *p, cmp_float);
    float best_t = fixed;
    double best_key1 = INFINITY, best_key2 = -INFINITY;
    int have = 0;
    for (int i = -1; i < n; i++) {
        float t;
        if (i < 0) t = p[0] * 0.5f;
        else if (i == n - 1) t = 0.5f * (p[n - 1] + 1.0f);
        else if (p[i + 1] == p[i]) continue;
        else t = 0.5f * (p[i] + p[i + 1]);
        if (t <= 1e-6f) t = 1e-6f;
        if (t >= 1 - 1e-6f) t = 1 - 1e-6f;
        int tp1 = 0, tp0 = 0;
        for (int j = 0; j < n; j++) {
            int pred = probs[(size_t)j * 2 + 1] >= t;
            if (labels[j] && pred) tp1++;
            if (!labels[j] && !pred) tp0++;
        }
        double r0 = (double)tp0 / n0, r1 = (double)tp1 / n1;
        double key1, key2; /* minimise key1, then maximise key2 */
        if (rule == NN_THRESH_EQUAL_RECALL) {
            key1 = fabs(r0 - r1);
            key2 = r0 + r1;
        } else {
            double rc = cls == 1 ? r1 : r0, ro = cls == 1 ? r0 : r1;
            if (rc < min_recall - 1e-12) continue;
            key1 = -ro;
            key2 = -fabs((double)t - 0.5); /* among equals, nearest to 0.5 */
        }
        if (!have || key1 < best_key1 - 1e-12 || (fabs(key1 - best_key1) <= 1e-12 && key2 > best_key2)) {
            have = 1;
            best_key1 = key1;
            best_key2 = key2;
            best_t = t;
        }
    }
    free(p);
    return best_t;
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

cJSON *nn_metrics_json(const nn_metrics *m, const char (*classes)[64]) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", m->n);
    add_num(o, "accuracy", m->accuracy);
    add_num(o, "precision", m->macro_p);
    add_num(o, "recall", m->macro_r);
    add_num(o, "f1", m->macro_f1);
    add_num(o, "weighted_precision", m->weighted_p);
    add_num(o, "weighted_recall", m->weighted_r);
    add_num(o, "weighted_f1", m->weighted_f1);
    add_num(o, "auc", m->auc);
    add_num(o, "loss", m->loss);
    if (m->k == 2) add_num(o, "threshold", m->threshold);
    cJSON *cl = cJSON_AddArrayToObject(o, "classes");
    for (int c = 0; c < m->k; c++) cJSON_AddItemToArray(cl, cJSON_CreateString(classes[c]));
    cJSON *pc = cJSON_AddObjectToObject(o, "per_class");
    for (int c = 0; c < m->k; c++) {
        cJSON *e = cJSON_AddObjectToObject(pc, classes[c]);
        add_num(e, "precision", m->precision[c]);
        add_num(e, "recall", m->recall[c]);
        add_num(e, "f1", m->f1[c]);
        cJSON_AddNumberToObject(e, "support", m->support[c]);
        add_num(e, "auc", m->class_auc[c]);
    }
    cJSON *cm = cJSON_AddArrayToObject(o, "confusion");
    for (int r = 0; r < m->k; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < m->k; c++) cJSON_AddItemToArray(row, cJSON_CreateNumber(m->confusion[r][c]));
        cJSON_AddItemToArray(cm, row);
    }
    return o;
}

void nn_metrics_report(FILE *f, const nn_metrics *m, const char (*classes)[64], const char *title) {
    int w = 12;
    for (int c = 0; c < m->k; c++)
        if ((int)strlen(classes[c]) > w) w = (int)strlen(classes[c]);
    if (title) fprintf(f, "%s\n\n", title);
    fprintf(f, "%*s %10s %10s %10s %10s\n\n", w, "", "precision", "recall", "f1-score", "support");
    for (int c = 0; c < m->k; c++)
        fprintf(f, "%*s %10.4f %10.4f %10.4f %10d\n", w, classes[c], m->precision[c], m->recall[c],
                m->f1[c], m->support[c]);
    fprintf(f, "\n%*s %10s %10s %10.4f %10d\n", w, "accuracy", "", "", m->accuracy, m->n);
    fprintf(f, "%*s %10.4f %10.4f %10.4f %10d\n", w, "macro avg", m->macro_p, m->macro_r, m->macro_f1, m->n);
    fprintf(f, "%*s %10.4f %10.4f %10.4f %10d\n", w, "weighted avg", m->weighted_p, m->weighted_r,
            m->weighted_f1, m->n);
    fprintf(f, "\nROC AUC: %.4f", m->auc);
    if (m->k == 2) fprintf(f, "   (threshold on P(%s): %.4f)", classes[1], m->threshold);
    fprintf(f, "\n\nconfusion matrix (rows: true, columns: predicted)\n%*s", w, "");
    for (int c = 0; c < m->k; c++) fprintf(f, " %*s", (int)strlen(classes[c]) > 8 ? (int)strlen(classes[c]) : 8, classes[c]);
    fputc('\n', f);
    for (int r = 0; r < m->k; r++) {
        fprintf(f, "%*s", w, classes[r]);
        for (int c = 0; c < m->k; c++)
            fprintf(f, " %*d", (int)strlen(classes[c]) > 8 ? (int)strlen(classes[c]) : 8, m->confusion[r][c]);
        fputc('\n', f);
    }
}
