/* nnmask-detect.c — finds every face in photos (UltraFace), classifies them (mask
 * classifier, one batch per photo) and prints, JSON-lines or draws the results. */
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnmask.h"
#include "pipeline.h"
#include "ultraface.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: nnmask-detect --model M IMAGE_OR_DIR... [options]\n"
        "Finds every face in each image, classifies it (mask / no mask) and prints\n"
        "one line per face (or --json: one JSON object per image per line).\n"
        "  --model M          trained mask classifier (.safetensors); default: the camera\n"
        "                     model camera.safetensors in $NNMASK_MODELS or models/\n"
        "                     (train/make_camera_model.sh); without one (or with\n"
        "                     --model none) faces are only detected (label \"face\")\n"
        "  --out DIR          write annotated copies into DIR (green: mask, red: none)\n"
        "  --json             {\"image\": PATH, \"faces\": [{\"box\": [x0,y0,x1,y1], \"score\": S,\n"
        "                     \"label\": CLASS, \"probability\": P}, ...]} per image\n"
        "  --detector FILE    converted UltraFace detector; default $NNMASK_DETECTOR, else\n"
        "                     ultraface-RFB-320 (else -slim-320).safetensors in\n"
        "                     $NNMASK_MODELS, models/ or weights/\n"
        "  --threshold T      face score threshold (default 0.6)\n"
        "  --nms-iou U        non-maximum suppression overlap (default 0.3)\n"
        "  --det-size N       detector input long side, aspect kept (default 384)\n"
        "  --fit resize|letterbox  how a photo fills the detector input (default letterbox)\n"
        "  --max-faces N      faces kept per image, best first (default 256)\n"
        "  --threads N        CPU threads (default: all cores)\n"
        "Folders are read one level deep (.jpg .jpeg .png .bmp .gif .webp), in name order.\n"
        "Exit status: 0 all images done, 1 some image failed, 2 bad usage or model.\n");
}

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot) return 0;
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expands folders into their images (sorted); files pass through. */
static char **collect(char **args, int n, int *count) {
    char **out = NULL;
    int cnt = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        struct stat s;
        int is_dir = stat(args[i], &s) == 0 && S_ISDIR(s.st_mode);
        int start = cnt;
        if (is_dir) {
            DIR *d = opendir(args[i]);
            if (!d) {
                fprintf(stderr, "nnmask-detect: %s: cannot open folder\n", args[i]);
                continue;
            }
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
                size_t len = strlen(args[i]) + strlen(e->d_name) + 2;
                char *p = malloc(len);
                snprintf(p, len, "%s/%s", args[i], e->d_name);
                struct stat fs;
                if (stat(p, &fs) != 0 || !S_ISREG(fs.st_mode)) {
                    free(p);
                    continue;
                }
                if (cnt == cap) {
                    cap = cap ? 2 * cap : 64;
                    out = realloc(out, sizeof *out * cap);
                }
                out[cnt++] = p;
            }
            closedir(d);
            qsort(out + start, (size_t)(cnt - start), sizeof *out, cmp_str);
        } else {
            if (cnt == cap) {
                cap = cap ? 2 * cap : 64;
                out = realloc(out, sizeof *out * cap);
            }
            out[cnt++] = strdup(args[i]);
        }
    }
    *count = cnt;
    return out;
}

static double round_to(double v, double q) { return round(v / q) * q; }

static void print_json(const char *path, const nn_pipe_face *f, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "image", path);
    cJSON *arr = cJSON_AddArrayToObject(o, "faces");
    for (int i = 0; i < n; i++) {
        cJSON *jf = cJSON_CreateObject();
        const double box[4] = {round_to(f[i].x0, 0.01), round_to(f[i].y0, 0.01),
                               round_to(f[i].x1, 0.01), round_to(f[i].y1, 0.01)};
        cJSON_AddItemToObject(jf, "box", cJSON_CreateDoubleArray(box, 4));
        cJSON_AddNumberToObject(jf, "score", round_to(f[i].score, 1e-4));
        cJSON_AddStringToObject(jf, "label", f[i].label);
        if (f[i].prob >= 0)
            cJSON_AddNumberToObject(jf, "probability", round_to(f[i].prob, 1e-4));
        else
            cJSON_AddNullToObject(jf, "probability");
        cJSON_AddItemToArray(arr, jf);
    }
    char *s = cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

static void print_text(const char *path, const nn_pipe_face *f, int n) {
    printf("%s: %d face%s\n", path, n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        char text[96];
        nn_pipe_face_text(&f[i], text, sizeof text);
        printf("  [%4.0f %4.0f %4.0f %4.0f] score %.2f  %s", f[i].x0, f[i].y0, f[i].x1, f[i].y1,
               (double)f[i].score, text);
        if (f[i].cls >= 0) printf("  (%s %.4f)", f[i].label, (double)f[i].prob);
        printf("\n");
    }
}

/* DIR/<basename>, .png unless the input is a JPEG */
static void out_path(char *dst, size_t cap, const char *dir, const char *in) {
    const char *base = strrchr(in, '/');
    base = base ? base + 1 : in;
    const char *dot = strrchr(base, '.');
    int jpeg = dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
    int stem = dot ? (int)(dot - base) : (int)strlen(base);
    if (jpeg || (dot && !strcasecmp(dot, ".png")))
        snprintf(dst, cap, "%s/%s", dir, base);
    else
        snprintf(dst, cap, "%s/%.*s.png", dir, stem, base);
}

int main(int argc, char **argv) {
    const char *model = NULL, *detector = NULL, *out_dir = NULL;
    int json = 0, threads = 0, det_size = 384, max_faces = 256;
    float threshold = 0.6f, nms_iou = 0.3f;
    nn_uf_fit fit = NN_UF_LETTERBOX;
    char **inputs = calloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(a, "--model") || !strcmp(a, "--detector") || !strcmp(a, "--out") ||
                    !strcmp(a, "--threshold") || !strcmp(a, "--det-size") ||
                    !strcmp(a, "--fit") || !strcmp(a, "--threads") || !strcmp(a, "--nms-iou") ||
                    !strcmp(a, "--max-faces");
        if (takes && !v) {
            fprintf(stderr, "nnmask-detect: %s needs a value\n", a);
            return 2;
        }
        char *end = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--detector")) {
            detector = v;
        } else if (!strcmp(a, "--out")) {
            out_dir = v;
        } else if (!strcmp(a, "--threshold")) {
            threshold = strtof(v, &end);
            if (*end || !(threshold >= 0.f && threshold < 1.f)) {
                fprintf(stderr, "nnmask-detect: --threshold %s: expected a number in [0, 1)\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--nms-iou")) {
            nms_iou = strtof(v, &end);
            if (*end || !(nms_iou > 0.f && nms_iou <= 1.f)) {
                fprintf(stderr, "nnmask-detect: --nms-iou %s: expected a number in (0, 1]\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--det-size")) {
            det_size = (int)strtol(v, &end, 10);
            if (*end || det_size < 32 || det_size > 4096) {
                fprintf(stderr, "nnmask-detect: --det-size %s: expected 32..4096\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--max-faces")) {
            max_faces = (int)strtol(v, &end, 10);
            if (*end || max_faces < 1 || max_faces > 100000) {
                fprintf(stderr, "nnmask-detect: --max-faces %s: expected 1..100000\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) {
            threads = (int)strtol(v, &end, 10);
            if (*end || threads < 0) {
                fprintf(stderr, "nnmask-detect: --threads %s: expected a count\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--fit")) {
            if (!strcmp(v, "resize")) fit = NN_UF_RESIZE;
            else if (!strcmp(v, "letterbox")) fit = NN_UF_LETTERBOX;
            else {
                fprintf(stderr, "nnmask-detect: --fit %s: expected resize or letterbox\n", v);
                return 2;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "nnmask-detect: unknown option '%s' (try --help)\n", a);
            return 2;
        } else {
            inputs[n_inputs++] = argv[i];
            continue;
        }
        if (takes) i++;
    }
    if (!n_inputs) {
        usage(stderr);
        return 2;
    }
    if (!detector) {
        if ((detector = nn_pipeline_default_detector()))
            fprintf(stderr, "nnmask-detect: using the detector %s\n", detector);
        else
            detector = "models/ultraface-RFB-320.safetensors";   /* named in the error below */
    }
    if (!model) {
        model = nn_pipeline_default_classifier();
        if (model) fprintf(stderr, "nnmask-detect: using the camera model %s\n", model);
    } else if (!strcmp(model, "none")) {
        model = NULL;
    }
    if (!model) fprintf(stderr, "nnmask-detect: no --model: faces are detected, not classified\n");
    nn_threads_set(threads);

    nn_pipe_opts po;
    nn_pipe_opts_default(&po);
    po.detector = detector;
    po.classifier = model;
    po.det.score_threshold = threshold;
    po.det.iou_threshold = nms_iou;
    po.det.fit = fit;
    po.det_long_side = det_size;
    po.max_faces = max_faces;
    nn_pipeline *pipe = nn_pipeline_new(&po);
    if (!pipe) {
        fprintf(stderr, "nnmask-detect: %s\n", nn_error());
        if (access(detector, R_OK) != 0)
            fprintf(stderr, "nnmask-detect: get the detector with weights/fetch_ultraface.sh (or "
                            "convert one with weights/convert_ultraface.py) or pass --detector\n");
        free(inputs);
        return 2;
    }
    if (out_dir && nn_mkdir_p(out_dir)) {
        fprintf(stderr, "nnmask-detect: %s\n", nn_error());
        nn_pipeline_free(pipe);
        free(inputs);
        return 2;
    }
    int n_files;
    char **files = collect(inputs, n_inputs, &n_files);
    int failed = 0;
    if (n_files == 0) {
        fprintf(stderr, "nnmask-detect: no images found\n");
        failed = 1;
    }
    for (int i = 0; i < n_files; i++) {
        nn_image img;
        if (nn_image_load(&img, files[i])) {
            fprintf(stderr, "nnmask-detect: %s\n", nn_error());
            failed = 1;
            continue;
        }
        int n = nn_pipeline_run(pipe, &img);
        if (n < 0) {
            fprintf(stderr, "nnmask-detect: %s: %s\n", files[i], nn_error());
            nn_image_free(&img);
            failed = 1;
            continue;
        }
        const nn_pipe_face *faces = nn_pipeline_faces(pipe, &n);
        if (json) print_json(files[i], faces, n);
        else print_text(files[i], faces, n);
        fflush(stdout);
        if (out_dir) {
            char path[4096];
            out_path(path, sizeof path, out_dir, files[i]);
            nn_pipeline_draw(pipe, &img);
            if (nn_image_write(&img, path, 92)) {
                fprintf(stderr, "nnmask-detect: %s\n", nn_error());
                failed = 1;
            }
        }
        nn_image_free(&img);
    }
    for (int i = 0; i < n_files; i++) free(files[i]);
    free(files);
    free(inputs);
    nn_pipeline_free(pipe);
    return failed;
}
