/* nnmask-eval — scores a trained classifier on a labelled folder or on a
 * run's saved split: metrics.json, report.txt, confusion/ROC plots, --json. */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "data.h"
#include "nnmask.h"
#include "trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nnmask-eval --model M (--data DIR | --split SPLIT.csv [--subset test|val|train|all])\n"
            "                   [--threshold T] [--shrink PX] [--json] [--out DIR] [--no-plots] [--threads N]\n"
            "\n"
            "DIR holds one folder per class of the model (e.g. with_mask/, without_mask/).\n"
            "SPLIT.csv is a training run's split.csv (default subset: test).\n"
            "--shrink PX scores every face as a camera that sees it at PX x PX pixels would\n"
            "deliver it: shrunk to PX px, then scaled back up to the model's input (8..input).\n"
            "--out DIR writes metrics.json, report.txt, confusion.png and roc.png there;\n"
            "--json prints the metrics as one JSON object instead of the report.\n");
}

int main(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *split = NULL, *out = NULL, *subset = "test";
    int json = 0, plots = 1, threads = 0, shrink = 0;
    float threshold = NAN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && more) model = argv[++i];
        else if (!strcmp(a, "--data") && more) data = argv[++i];
        else if (!strcmp(a, "--split") && more) split = argv[++i];
        else if (!strcmp(a, "--subset") && more) subset = argv[++i];
        else if (!strcmp(a, "--out") && more) out = argv[++i];
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--shrink") && more) {
            char *e;
            long v = strtol(argv[++i], &e, 10);
            if (*e || v < 8 || v > 4096) {
                fprintf(stderr, "nnmask-eval: --shrink '%s' is not a face size in px (8 or more)\n", argv[i]);
                return 2;
            }
            shrink = (int)v;
        }
        else if (!strcmp(a, "--threshold") && more) {
            char *e;
            threshold = strtof(argv[++i], &e);
            if (*e || !(threshold > 0 && threshold < 1)) {
                fprintf(stderr, "nnmask-eval: --threshold '%s' is not a probability in (0, 1)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--no-plots")) plots = 0;
        else {
            fprintf(stderr, "nnmask-eval: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || (!data == !split)) {
        usage(stderr);
        return 2;
    }
    int mask = 0;
    if (!strcmp(subset, "train")) mask = 1;
    else if (!strcmp(subset, "val")) mask = 2;
    else if (!strcmp(subset, "test")) mask = 4;
    else if (!strcmp(subset, "all")) mask = 7;
    else {
        fprintf(stderr, "nnmask-eval: --subset must be test, val, train or all\n");
        return 2;
    }
    nn_threads_set(threads);
    nn_classifier *clf = nn_classifier_load(model);
    if (!clf) {
        fprintf(stderr, "nnmask-eval: %s\n", nn_error());
        return 1;
    }
    if (shrink > clf->input_size) {
        fprintf(stderr, "nnmask-eval: --shrink %d is larger than the model's input (%d px)\n", shrink,
                clf->input_size);
        nn_classifier_free(clf);
        return 2;
    }
    if (threshold == threshold) {
        clf->threshold = threshold;
        snprintf(clf->threshold_rule, sizeof clf->threshold_rule, "--threshold");
    }
    nn_dataset ds;
    int r = data ? nn_dataset_from_dir(&ds, data, (const char(*)[64])clf->classes, clf->n_classes)
                 : nn_split_read(&ds, split, mask, (const char(*)[64])clf->classes, clf->n_classes);
    if (r) {
        fprintf(stderr, "nnmask-eval: %s\n", nn_error());
        nn_classifier_free(clf);
        return 1;
    }
    nn_classifier_release_params(clf);
    if ((out && nn_mkdir_p(out)) || nn_classifier_prepare(clf, 32)) {
        fprintf(stderr, "nnmask-eval: %s\n", nn_error());
        nn_dataset_free(&ds);
        nn_classifier_free(clf);
        return 1;
    }
    float *probs = malloc(((size_t)ds.n + 1) * clf->n_classes * sizeof(float));
    int *ok = calloc((size_t)ds.n + 1, sizeof(int));
    if (!probs || !ok) nn_fatal("out of memory");
    int failed = nn_eval_probs(clf, &ds, probs, ok, shrink);
    char title[1200];
    int tl = snprintf(title, sizeof title, "%s%s%s", data ? data : split, data ? "" : ", subset ", data ? "" : subset);
    if (shrink && tl > 0 && (size_t)tl < sizeof title)
        snprintf(title + tl, sizeof title - (size_t)tl, ", faces shrunk to %d px", shrink);
    cJSON *js = NULL;
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "model", model);
    cJSON_AddNumberToObject(extra, "unreadable", failed);
    if (shrink) cJSON_AddNumberToObject(extra, "shrink", shrink);
    r = nn_eval_outputs(out, clf, &ds, probs, ok, 7, plots && out, title, extra, &js, json ? NULL : stdout);
    if (r) {
        fprintf(stderr, "nnmask-eval: %s\n", nn_error());
    } else if (json) {
        char *s = cJSON_PrintUnformatted(js);
        printf("%s\n", s);
        free(s);
    } else if (out) {
        printf("\nwritten to %s/: metrics.json report.txt%s\n", out, plots ? " confusion.png roc.png" : "");
    }
    cJSON_Delete(js);
    free(probs);
    free(ok);
    nn_dataset_free(&ds);
    nn_classifier_free(clf);
    if (r) return 1;
    return failed ? 1 : 0;
}
