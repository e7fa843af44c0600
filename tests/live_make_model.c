/* live_make_model.c — test helper for tests/test_live.py: an untrained mask
 * classifier (random MobileNetV2 0.35 at 96 px) whose threshold splits the
 * given faces of a frame (at their widest gap) into with_mask / without_mask, and its reference
 * probabilities for those faces (crops by nn_face_crop, one batch).
 *
 * usage: live_make_model OUT.safetensors FRAME x0,y0,x1,y1 [...]
 * stdout: {"threshold": T, "probs": [[p0, p1], ...]} in the order of the boxes.
 * Exit 0, or 1 with a message (3 when the faces cannot be split: every face
 * got the same probability). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "facecrop.h"
#include "nnmask.h"

#define MAXF 64

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 4 || argc - 3 > MAXF) {
        fprintf(stderr, "usage: live_make_model OUT.safetensors FRAME x0,y0,x1,y1 [...]\n");
        return 1;
    }
    const char *out = argv[1];
    nn_image frame;
    if (nn_image_load(&frame, argv[2])) {
        fprintf(stderr, "live_make_model: %s\n", nn_error());
        return 1;
    }
    int n = argc - 3;
    float box[MAXF][4];
    for (int i = 0; i < n; i++) {
        if (sscanf(argv[3 + i], "%f,%f,%f,%f", &box[i][0], &box[i][1], &box[i][2], &box[i][3]) !=
            4) {
            fprintf(stderr, "live_make_model: bad box '%s'\n", argv[3 + i]);
            return 1;
        }
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");

    nn_rng rng;
    nn_rng_seed(&rng, 20240611);
    nn_mnv2 *m = nn_mnv2_new(0.35f, 96, 0);
    if (!m || nn_mnv2_init_random_weights(m, &rng, dir)) {
        fprintf(stderr, "live_make_model: %s\n", nn_error());
        return 1;
    }
    const char classes[2][64] = {"with_mask", "without_mask"};
    nn_classifier *c = nn_classifier_new(m, 2, classes, 16, 0.0f, &rng);
    if (!c) {
        fprintf(stderr, "live_make_model: %s\n", nn_error());
        return 1;
    }
    nn_image crops[MAXF];
    memset(crops, 0, sizeof crops);
    for (int i = 0; i < n; i++) {
        if (nn_face_crop(&crops[i], &frame, box[i][0], box[i][1], box[i][2], box[i][3],
                         c->input_size)) {
            fprintf(stderr, "live_make_model: %s\n", nn_error());
            return 1;
        }
    }
    float probs[MAXF * 2], p1[MAXF];
    if (nn_classifier_predict(c, crops, n, probs)) {
        fprintf(stderr, "live_make_model: %s\n", nn_error());
        return 1;
    }
    for (int i = 0; i < n; i++) p1[i] = probs[2 * i + 1];
    qsort(p1, (size_t)n, sizeof *p1, cmp_float);
    /* split at the widest gap, so that small changes of a box (JSON rounds
     * them) never move a face across the threshold */
    int k = 1;
    for (int j = 2; j < n; j++)
        if (p1[j] - p1[j - 1] > p1[k] - p1[k - 1]) k = j;
    int rc = 0;
    if (n >= 2 && !(p1[k] - p1[k - 1] > 1e-3f)) rc = 3;
    c->threshold = n >= 2 ? 0.5f * (p1[k - 1] + p1[k]) : p1[0];
    printf("{\"threshold\": %.9g, \"probs\": [", (double)c->threshold);
    for (int i = 0; i < n; i++)
        printf("%s[%.9g, %.9g]", i ? ", " : "", (double)probs[2 * i], (double)probs[2 * i + 1]);
    printf("]}\n");
    if (nn_classifier_save(c, out, NULL)) {
        fprintf(stderr, "live_make_model: %s\n", nn_error());
        rc = 1;
    }
    for (int i = 0; i < n; i++) nn_image_free(&crops[i]);
    nn_image_free(&frame);
    nn_classifier_free(c);
    if (rc == 3) fprintf(stderr, "live_make_model: every face has the same probability\n");
    return rc;
}
