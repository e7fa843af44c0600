/* nnmask-predict.c — classifies images: --imagenet prints the top-5 ImageNet classes of each
 * image with the converted MobileNetV2 (center crop, resize to 224, batch 1). */

#include "mobilenetv2.h"
#include "nnmask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef NN_SOURCE_ROOT
#define NN_SOURCE_ROOT "."
#endif
#define DEFAULT_MODEL "mobilenet_v2_1.0_224.safetensors"
#define LABELS_BESIDE "imagenet_labels.txt"
#define N_CLASSES 1001

typedef struct {
    int imagenet, top, threads;
    const char *model, *labels;
    char **images;
    int n_images;
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: nnmask-predict --imagenet [--model FILE] [--labels FILE] [--top K]\n"
            "                      [--threads N] IMAGE...\n"
            "  --imagenet    top-K ImageNet classes per image, one line each:\n"
            "                IMAGE<TAB>rank<TAB>probability<TAB>label\n"
            "  --model FILE  MobileNetV2 with its ImageNet head (nnmask safetensors); default\n"
            "                $NNMASK_MODELS/" DEFAULT_MODEL ", else\n"
            "                <source>/models/" DEFAULT_MODEL "\n"
            "                (where weights/fetch_weights.sh and convert_mobilenetv2.py write it)\n"
            "  --labels FILE 1001 lines, line 1 = background (or 1000 lines without it); default\n"
            "                " LABELS_BESIDE " beside the model, else\n"
            "                $NNMASK_SHARED/data/imagenet/labels.txt (<source>/../shared/...)\n"
            "  --top K       classes per image (default 5)\n"
            "  --threads N   threads (default: all cores)\n"
            "Images: JPEG, PNG, BMP, GIF, WebP. Unreadable ones are reported on stderr,\n"
            "the others still printed; the exit status is then 1.\n");
}

static int parse(opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->top = 5;
    o->images = calloc((size_t)argc, sizeof *o->images);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--imagenet")) {
            o->imagenet = 1;
        } else if (!strcmp(a, "--model") && more) {
            o->model = argv[++i];
        } else if (!strcmp(a, "--labels") && more) {
            o->labels = argv[++i];
        } else if (!strcmp(a, "--top") && more) {
            o->top = atoi(argv[++i]);
            if (o->top < 1 || o->top > N_CLASSES) {
                fprintf(stderr, "nnmask-predict: --top %s out of range 1..%d\n", argv[i], N_CLASSES);
                return -1;
            }
        } else if (!strcmp(a, "--threads") && more) {
            o->threads = atoi(argv[++i]);
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "nnmask-predict: unknown or incomplete option %s\n", a);
            return -1;
        } else {
            o->images[o->n_images++] = argv[i];
        }
    }
    if (!o->imagenet) {
        fprintf(stderr, "nnmask-predict: say --imagenet (the only mode of this build)\n");
        return -1;
    }
    if (!o->n_images) {
        fprintf(stderr, "nnmask-predict: no images given\n");
        return -1;
    }
    return 0;
}

static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

/* The default model: $NNMASK_MODELS, else <source>/models. */
static const char *default_model(char *buf, size_t cap) {
    const char *env = getenv("NNMASK_MODELS");
    if (env && *env)
        snprintf(buf, cap, "%s/%s", env, DEFAULT_MODEL);
    else
        snprintf(buf, cap, "%s/models/%s", NN_SOURCE_ROOT, DEFAULT_MODEL);
    return buf;
}

static const char *default_labels(const char *model, char *buf, size_t cap) {
    const char *slash = strrchr(model, '/');
    if (slash)
        snprintf(buf, cap, "%.*s/%s", (int)(slash - model), model, LABELS_BESIDE);
    else
        snprintf(buf, cap, "%s", LABELS_BESIDE);
    if (is_file(buf)) return buf;
    const char *sh = getenv("NNMASK_SHARED");
    if (sh && *sh)
        snprintf(buf, cap, "%s/data/imagenet/labels.txt", sh);
    else
        snprintf(buf, cap, "%s/../shared/data/imagenet/labels.txt", NN_SOURCE_ROOT);
    return buf;
}

/* 1001 labels (index 0 = background); a 1000-line file (no background)
 * gets "background" prepended. lab[N_CLASSES] owns the text. */
static char **load_labels(const char *path) {
    uint8_t *d;
    size_t len;
    if (nn_file_read(path, &d, &len, 16u << 20)) return NULL;
    char *text = realloc(d, len + 1);
    if (!text) {
        free(d);
        nn_set_error("%s: out of memory", path);
        return NULL;
    }
    text[len] = 0;
    char **lab = calloc(N_CLASSES + 2, sizeof *lab);
    int n = 0;
    for (char *p = text; *p && n <= N_CLASSES;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[l - 1] = 0;
        lab[n++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    if (n == N_CLASSES - 1) {
        memmove(lab + 1, lab, sizeof *lab * (N_CLASSES - 1));
        lab[0] = "background";
        n = N_CLASSES;
    }
    if (n != N_CLASSES) {
        nn_set_error("%s: %s labels, expected 1001 (background first) or 1000", path,
                     n > N_CLASSES ? "more than 1001" : "fewer");
        free(text);
        free(lab);
        return NULL;
    }
    lab[N_CLASSES] = text;
    return lab;
}

static int run_imagenet(const opts *o) {
    char mbuf[4096], lbuf[4096];
    const char *model = o->model ? o->model : default_model(mbuf, sizeof mbuf);
    if (!o->model && !is_file(model)) {
        fprintf(stderr,
                "nnmask-predict: no model at %s\n"
                "  convert one first: weights/fetch_weights.sh (or\n"
                "  weights/convert_mobilenetv2.py ... --imagenet-head ...), or pass --model FILE\n",
                model);
        return 2;
    }
    const char *labels = o->labels ? o->labels : default_labels(model, lbuf, sizeof lbuf);
    char **lab = load_labels(labels);
    if (!lab) {
        fprintf(stderr, "nnmask-predict: %s\n", nn_error());
        return 2;
    }
    nn_mnv2 *m = nn_mnv2_load_file(model, 1);
    if (!m || nn_mnv2_prepare_infer(m, 1)) {
        fprintf(stderr, "nnmask-predict: %s\n", nn_error());
        nn_mnv2_free(m);
        free(lab[N_CLASSES]);
        free(lab);
        return 2;
    }
    const int S = nn_mnv2_input_size(m);
    float *x = malloc(sizeof(float) * S * S * 3);
    float logits[N_CLASSES], probs[N_CLASSES];
    int failed = 0;
    for (int i = 0; i < o->n_images; i++) {
        const char *path = o->images[i];
        nn_image img;
        if (nn_image_load(&img, path)) {
            fprintf(stderr, "nnmask-predict: %s\n", nn_error());
            failed++;
            continue;
        }
        int r = nn_mnv2_preprocess_center(&img, S, x);
        nn_image_free(&img);
        if (r) {
            fprintf(stderr, "nnmask-predict: %s: %s\n", path, nn_error());
            failed++;
            continue;
        }
        nn_mnv2_infer(m, x, 1, NULL, NULL, logits);
        nn_tensor lt = nn_tensor_make(logits, 1, 1, 1, N_CLASSES);
        nn_tensor pt = nn_tensor_make(probs, 1, 1, 1, N_CLASSES);
        nn_softmax_forward(&pt, &lt);
        int used[N_CLASSES] = {0};
        for (int k = 0; k < o->top; k++) {
            int best = -1;
            for (int c = 0; c < N_CLASSES; c++)
                if (!used[c] && (best < 0 || probs[c] > probs[best])) best = c;
            used[best] = 1;
            printf("%s\t%d\t%.4f\t%s\n", path, k + 1, (double)probs[best], lab[best]);
        }
        fflush(stdout);
    }
    free(x);
    nn_mnv2_free(m);
    free(lab[N_CLASSES]);
    free(lab);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) {
    opts o;
    if (parse(&o, argc, argv)) {
        usage(stderr);
        free(o.images);
        return 2;
    }
    nn_threads_set(o.threads);
    int rc = run_imagenet(&o);
    free(o.images);
    return rc;
}
