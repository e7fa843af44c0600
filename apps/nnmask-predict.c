/* nnmask-predict.c — classifies images: --imagenet prints the top-5 ImageNet classes of each
 * image with the converted MobileNetV2 (center crop, resize to 224, batch 1); --model M
 * with a trained mask classifier prints "path label probability" per image. */

#include "classifier.h"
#include "mobilenetv2.h"
#include "nnmask.h"

#include <cjson/cJSON.h>
#include <dirent.h>

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
    int imagenet, top, threads, json, csv;
    const char *model, *labels;
    char **images;
    int n_images;
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: nnmask-predict --model MODEL [--json | --csv] [--threads N] IMAGE_OR_DIR...\n"
            "       nnmask-predict --imagenet [--model FILE] [--labels FILE] [--top K]\n"
            "                      [--threads N] IMAGE...\n"
            "  --model MODEL a trained classifier (nnmask-train's model.safetensors): one line\n"
            "                per image, 'path label probability' (the probability of that\n"
            "                label; the decision rule is the model's), or --json (one JSON\n"
            "                array) / --csv (with P of every class). Folders are searched\n"
            "                recursively for files.\n"
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
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--csv")) {
            o->csv = 1;
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
    if (!o->imagenet && !o->model) {
        fprintf(stderr, "nnmask-predict: give --model MODEL (a trained classifier) or --imagenet\n");
        return -1;
    }
    if (o->json && o->csv) {
        fprintf(stderr, "nnmask-predict: --json and --csv exclude each other\n");
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
    if (!lab) {
        free(text);
        nn_set_error("%s: out of memory", path);
        return NULL;
    }
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

/* ---- classifier mode (--model M without --imagenet) ---- */

static int cmp_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Appends path (a file) or the files under it (a folder, recursively, sorted). */
static void expand(const char *path, char ***list, int *n, int *cap) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) goto as_file;
        char **sub = NULL;
        int ns = 0, cs = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            if (ns == cs) sub = realloc(sub, (size_t)(cs = cs ? 2 * cs : 64) * sizeof *sub);
            size_t len = strlen(path) + strlen(e->d_name) + 2;
            sub[ns] = malloc(len);
            snprintf(sub[ns++], len, "%s/%s", path, e->d_name);
        }
        closedir(d);
        qsort(sub, (size_t)ns, sizeof *sub, cmp_path);
        for (int i = 0; i < ns; i++) {
            expand(sub[i], list, n, cap);
            free(sub[i]);
        }
        free(sub);
        return;
    }
as_file:
    if (*n == *cap) *list = realloc(*list, (size_t)(*cap = *cap ? 2 * *cap : 64) * sizeof **list);
    (*list)[(*n)++] = strdup(path);
}

static int run_classifier(const opts *o) {
    nn_classifier *c = nn_classifier_load(o->model);
    nn_classifier_release_params(c); /* inference only (NULL-safe) */
    if (!c || nn_classifier_prepare(c, 16)) {
        fprintf(stderr, "nnmask-predict: %s\n", nn_error());
        nn_classifier_free(c);
        return 2;
    }
    char **files = NULL;
    int nf = 0, cap = 0, failed = 0;
    for (int i = 0; i < o->n_images; i++) expand(o->images[i], &files, &nf, &cap);
    const int K = c->n_classes, B = 16;
    nn_image imgs[16];
    int idx[16];
    float probs[16 * NN_CLF_MAX_CLASSES];
    cJSON *arr = o->json ? cJSON_CreateArray() : NULL;
    if (o->csv) {
        printf("path,label,probability");
        for (int k = 0; k < K; k++) printf(",p_%s", c->classes[k]);
        printf("\n");
    }
    for (int i0 = 0; i0 < nf;) {
        int b = 0;
        for (; i0 < nf && b < B; i0++) {
            if (nn_image_load(&imgs[b], files[i0])) {
                fprintf(stderr, "nnmask-predict: %s\n", nn_error());
                failed++;
                continue;
            }
            idx[b++] = i0;
        }
        if (!b) continue;
        int r = nn_classifier_predict(c, imgs, b, probs);
        for (int j = 0; j < b; j++) nn_image_free(&imgs[j]);
        if (r) {
            fprintf(stderr, "nnmask-predict: %s\n", nn_error());
            failed += b;
            continue;
        }
        for (int j = 0; j < b; j++) {
            const float *p = probs + (size_t)j * K;
            int k = nn_classifier_decide(c, p);
            const char *path = files[idx[j]];
            if (arr) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "path", path);
                cJSON_AddStringToObject(e, "label", c->classes[k]);
                cJSON_AddNumberToObject(e, "probability", p[k]);
                cJSON *pc = cJSON_AddObjectToObject(e, "probabilities");
                for (int q = 0; q < K; q++) cJSON_AddNumberToObject(pc, c->classes[q], p[q]);
                cJSON_AddItemToArray(arr, e);
            } else if (o->csv) {
                int quote = strpbrk(path, ",\"\n") != NULL;
                if (quote) {
                    putchar('"');
                    for (const char *s = path; *s; s++) {
                        if (*s == '"') putchar('"');
                        putchar(*s);
                    }
                    putchar('"');
                } else {
                    fputs(path, stdout);
                }
                printf(",%s,%.6f", c->classes[k], (double)p[k]);
                for (int q = 0; q < K; q++) printf(",%.6f", (double)p[q]);
                printf("\n");
            } else {
                printf("%s %s %.4f\n", path, c->classes[k], (double)p[k]);
            }
        }
        fflush(stdout);
    }
    if (arr) {
        char *s = cJSON_Print(arr);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(arr);
    }
    for (int i = 0; i < nf; i++) free(files[i]);
    free(files);
    nn_classifier_free(c);
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
    int rc = o.imagenet ? run_imagenet(&o) : run_classifier(&o);
    free(o.images);
    return rc;
}
