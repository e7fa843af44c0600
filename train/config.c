/* config.c — the nnmask-train INI configuration: a table of every key with
 * its type, default and range; parsing with libinih; file:line errors. */

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "nnmask.h"

typedef enum { T_INT, T_FLOAT, T_BOOL, T_STR, T_PATHS, T_CLASSES, T_SPLIT, T_ENUM, T_FREEZE, T_ULONG } key_type;

typedef struct {
    const char *section, *name;
    key_type type;
    size_t off;       /* offset in nn_config */
    size_t count_off; /* T_PATHS: offset of the count */
    double lo, hi;    /* range for numbers */
    const char *def;  /* default as text (also the documentation) */
    const char *enums; /* T_ENUM: "a|b|c" mapped to 0,1,2 */
    const char *help;
} key_def;

#define O(f) offsetof(nn_config, f)
static const key_def keys[] = {
    {"data", "dir", T_PATHS, O(dirs), O(n_dirs), 0, 0, "", NULL, "class-folder roots (DIR/<class>/image files), comma separated"},
    {"data", "annotations", T_PATHS, O(csv), O(n_csv), 0, 0, "", NULL, "CSV files image,width,height,label,xmin,ymin,xmax,ymax (images next to the CSV or in its images/ or photos/)"},
    {"data", "voc", T_PATHS, O(voc), O(n_voc), 0, 0, "", NULL, "Pascal VOC folders (annotations/*.xml + images/)"},
    {"data", "classes", T_CLASSES, O(classes), O(n_classes), 0, 0, "with_mask, without_mask", NULL, "class names (folder names / labels); 2 = sigmoid, more = softmax"},
    {"data", "split", T_SPLIT, O(split), 0, 0, 0, "0.8, 0.1, 0.1", NULL, "train, validation, test fractions"},
    {"data", "folds", T_INT, O(folds), 0, 0, 100, "0", NULL, "cross-validation: split into N parts by photo/stratified (N >= 3; 0 = use data.split); see train/cross_validate.py"},
    {"data", "fold", T_INT, O(fold), 0, 0, 99, "0", NULL, "cross-validation: this run tests on part `fold`, validates on part fold+1 (mod folds), trains on the rest"},
    {"data", "seed", T_ULONG, O(seed), 0, 0, 0, "42", NULL, "seed of the split, initialisation, shuffling and augmentation"},
    {"data", "min_face", T_INT, O(min_face), 0, 1, 4096, "24", NULL, "annotated faces smaller than this (short side, px) are dropped"},
    {"data", "balance", T_ENUM, O(balance), 0, 0, 0, "none", "none|weights|sample", "class balancing: loss weights or balanced sampling"},
    {"data", "balance_sources", T_BOOL, O(balance_sources), 0, 0, 0, "false", NULL, "balance (source, class) pairs instead of classes"},
    {"data", "cache_threads", T_INT, O(cache_threads), 0, 0, 256, "0", NULL, "threads decoding images (0 = train.threads)"},
    {"data", "max_per_class", T_INT, O(max_per_class), 0, 0, 1e9, "0", NULL, "use at most N images per class and source (0 = all)"},

    {"model", "backbone", T_STR, O(backbone), 0, 0, 0, "models/mobilenet_v2_1.0_224.safetensors", NULL, "backbone safetensors file, or 'random' (He init)"},
    {"model", "alpha", T_FLOAT, O(alpha), 0, 0.35, 1.4, "1.0", NULL, "width multiplier (must match the backbone file)"},
    {"model", "input_size", T_INT, O(input_size), 0, 96, 224, "224", NULL, "input side in px, a multiple of 32"},
    {"model", "head_units", T_INT, O(head_units), 0, 1, 65536, "128", NULL, "units of the Dense ReLU layer of the head"},
    {"model", "dropout", T_FLOAT, O(dropout), 0, 0, 0.95, "0.5", NULL, "dropout rate after it"},
    {"model", "freeze", T_FREEZE, O(freeze), 0, 0, 0, "all", NULL, "all | none | last N (fine-tune the last N of 19 stages, BN frozen)"},

    {"train", "epochs", T_INT, O(epochs), 0, 1, 100000, "20", NULL, "epochs"},
    {"train", "batch", T_INT, O(batch), 0, 1, 4096, "32", NULL, "batch size"},
    {"train", "optimizer", T_ENUM, O(optimizer), 0, 0, 0, "adam", "adam|sgd", "optimizer"},
    {"train", "lr", T_FLOAT, O(lr), 0, 1e-9, 10, "1e-4", NULL, "learning rate"},
    {"train", "schedule", T_ENUM, O(schedule), 0, 0, 0, "inverse_time", "constant|inverse_time|cosine|step", "learning-rate schedule"},
    {"train", "decay", T_FLOAT, O(decay), 0, 0, 1e3, "5e-6", NULL, "inverse_time: lr / (1 + decay * step) (Keras' decay)"},
    {"train", "step_epochs", T_INT, O(step_epochs), 0, 1, 100000, "10", NULL, "step: every N epochs ..."},
    {"train", "step_gamma", T_FLOAT, O(step_gamma), 0, 1e-6, 1, "0.1", NULL, "... multiply the rate by this"},
    {"train", "min_lr", T_FLOAT, O(min_lr), 0, 0, 10, "0", NULL, "cosine: final rate"},
    {"train", "warmup_epochs", T_INT, O(warmup_epochs), 0, 0, 1000, "0", NULL, "linear warm-up epochs"},
    {"train", "momentum", T_FLOAT, O(momentum), 0, 0, 0.9999, "0.9", NULL, "sgd momentum"},
    {"train", "nesterov", T_BOOL, O(nesterov), 0, 0, 0, "false", NULL, "sgd nesterov"},
    {"train", "beta1", T_FLOAT, O(beta1), 0, 0, 0.9999999, "0.9", NULL, "adam beta1"},
    {"train", "beta2", T_FLOAT, O(beta2), 0, 0, 0.9999999, "0.999", NULL, "adam beta2"},
    {"train", "eps", T_FLOAT, O(eps), 0, 1e-12, 1, "1e-7", NULL, "adam epsilon (Keras default)"},
    {"train", "weight_decay", T_FLOAT, O(weight_decay), 0, 0, 1, "0", NULL, "decoupled weight decay"},
    {"train", "patience", T_INT, O(patience), 0, 0, 100000, "0", NULL, "early stopping after N epochs without a better val loss (0 = off)"},
    {"train", "threads", T_INT, O(threads), 0, 0, 256, "0", NULL, "compute threads (0 = all cores)"},
    {"train", "loader_threads", T_INT, O(loader_threads), 0, 1, 64, "1", NULL, "background augmentation threads"},
    {"train", "threshold", T_STR, O(threshold_class_name), 0, 0, 0, "0.5", NULL,
     "decision rule (2 classes): a probability, equal_recall, or min_recall:CLASS:R (chosen on validation)"},
    {"train", "threshold_source", T_STR, O(threshold_source), 0, 0, 0, "all", NULL, "validation data the threshold is chosen on: all, or one source (e.g. street: the camera-like faces)"},
    {"train", "precompute", T_BOOL, O(precompute), 0, 0, 0, "true", NULL, "frozen backbone, no augmentation: compute features once"},
    {"train", "aug_copies", T_INT, O(aug_copies), 0, 0, 1000, "0", NULL, "frozen backbone with augmentation: features of N augmented copies of each training image computed once, each epoch draws one per image (0 = augment every batch)"},

    {"augment", "enabled", T_BOOL, O(aug_enabled), 0, 0, 0, "true", NULL, "augment training images"},
    {"augment", "rotation", T_FLOAT, O(rotation), 0, 0, 180, "20", NULL, "rotation range, degrees"},
    {"augment", "zoom", T_FLOAT, O(zoom), 0, 0, 0.9, "0.15", NULL, "zoom range: scale in [1-z, 1+z] per axis"},
    {"augment", "width_shift", T_FLOAT, O(shift_x), 0, 0, 1, "0.2", NULL, "horizontal shift, fraction of the width"},
    {"augment", "height_shift", T_FLOAT, O(shift_y), 0, 0, 1, "0.2", NULL, "vertical shift, fraction of the height"},
    {"augment", "shear", T_FLOAT, O(shear), 0, 0, 60, "0.15", NULL, "shear range in degrees (as Keras' shear_range)"},
    {"augment", "hflip", T_BOOL, O(hflip), 0, 0, 0, "true", NULL, "random horizontal flip"},
    {"augment", "brightness", T_FLOAT, O(brightness), 0, 0, 1, "0", NULL, "brightness factor in [1-b, 1+b]"},
    {"augment", "fill", T_ENUM, O(fill), 0, 0, 0, "nearest", "nearest|constant|reflect", "fill mode outside the image"},
    {"augment", "contrast", T_FLOAT, O(contrast), 0, 0, 1, "0", NULL, "contrast factor in [1-c, 1+c]"},
    {"augment", "saturation", T_FLOAT, O(saturation), 0, 0, 1, "0", NULL, "saturation factor in [1-s, 1+s]"},
    {"augment", "hue", T_FLOAT, O(hue), 0, 0, 0.5, "0", NULL, "hue rotation in [-h, h] turns"},
    {"augment", "grey_prob", T_FLOAT, O(grey_prob), 0, 0, 1, "0", NULL, "probability of greyscale"},
    {"augment", "downscale_prob", T_FLOAT, O(downscale_prob), 0, 0, 1, "0", NULL, "probability of a down-and-up scale to a small face size"},
    {"augment", "downscale_min", T_INT, O(downscale_min), 0, 4, 1024, "16", NULL, "smallest face size, px"},
    {"augment", "downscale_max", T_INT, O(downscale_max), 0, 4, 1024, "128", NULL, "largest face size, px"},
    {"augment", "blur_prob", T_FLOAT, O(blur_prob), 0, 0, 1, "0", NULL, "probability of a gaussian blur"},
    {"augment", "blur_sigma", T_FLOAT, O(blur_sigma), 0, 0.3, 20, "1.5", NULL, "largest blur sigma, px (at input size)"},
    {"augment", "motion_blur_prob", T_FLOAT, O(motion_blur_prob), 0, 0, 1, "0", NULL, "probability of a motion blur"},
    {"augment", "motion_blur_max", T_INT, O(motion_blur_max), 0, 2, 64, "9", NULL, "longest motion blur, px"},
    {"augment", "jpeg_prob", T_FLOAT, O(jpeg_prob), 0, 0, 1, "0", NULL, "probability of a JPEG re-compression"},
    {"augment", "jpeg_min", T_INT, O(jpeg_min), 0, 1, 100, "20", NULL, "lowest JPEG quality"},
    {"augment", "jpeg_max", T_INT, O(jpeg_max), 0, 1, 100, "95", NULL, "highest JPEG quality"},
    {"augment", "noise_prob", T_FLOAT, O(noise_prob), 0, 0, 1, "0", NULL, "probability of sensor noise"},
    {"augment", "noise_std", T_FLOAT, O(noise_std), 0, 0, 128, "8", NULL, "largest noise std, 0..255 units"},
    {"augment", "box_jitter", T_FLOAT, O(box_jitter), 0, 0, 0.5, "0", NULL, "crop-box jitter (scale and shift), fraction of the box"},
    {"augment", "perspective", T_FLOAT, O(perspective), 0, 0, 0.3, "0", NULL, "corner displacement, fraction of the size"},
    {"augment", "preview", T_BOOL, O(preview), 0, 0, 0, "true", NULL, "write augment_preview.png"},

    {"output", "dir", T_STR, O(out_dir), 0, 0, 0, "runs/mask", NULL, "output folder"},
    {"output", "plots", T_BOOL, O(plots), 0, 0, 0, "true", NULL, "write curves.png, confusion.png, roc.png"},
};
#undef O
#define N_KEYS (sizeof keys / sizeof keys[0])

static const char *sections[] = {"data", "model", "train", "augment", "output"};

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* Splits a comma-separated list into trimmed items; returns count or -1. */
static int split_list(const char *v, char out[][NN_CFG_PATH], int max, size_t item_len, char *err,
                      size_t errlen) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", v);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        if (!*t) continue;
        if (n == max) {
            snprintf(err, errlen, "too many items (at most %d)", max);
            return -1;
        }
        if (strlen(t) >= item_len) {
            snprintf(err, errlen, "item too long: '%.40s...'", t);
            return -1;
        }
        /* out is [][NN_CFG_PATH] for paths, [][64] for classes: index by item_len */
        memcpy((char *)out + (size_t)n * item_len, t, strlen(t) + 1);
        n++;
    }
    return n;
}

static int parse_bool(const char *v, int *out) {
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcmp(v, "1")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcmp(v, "0")) {
        *out = 0;
        return 0;
    }
    return -1;
}

static int parse_double(const char *v, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *trim(end) || errno || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

/* Parses the threshold rule text into c. */
static int parse_threshold(nn_config *c, const char *v, char *err, size_t errlen) {
    double d;
    if (parse_double(v, &d) == 0) {
        if (!(d > 0 && d < 1)) {
            snprintf(err, errlen, "threshold %s out of range (0, 1)", v);
            return -1;
        }
        c->threshold_rule = NN_THRESH_FIXED;
        c->threshold = (float)d;
        return 0;
    }
    if (!strcmp(v, "equal_recall")) {
        c->threshold_rule = NN_THRESH_EQUAL_RECALL;
        return 0;
    }
    if (!strncmp(v, "min_recall:", 11)) {
        const char *cls = v + 11;
        const char *colon = strrchr(cls, ':');
        if (!colon || colon == cls) {
            snprintf(err, errlen, "threshold: expected min_recall:CLASS:RECALL, got '%s'", v);
            return -1;
        }
        if (parse_double(colon + 1, &d) || !(d > 0 && d <= 1)) {
            snprintf(err, errlen, "threshold: recall '%s' is not in (0, 1]", colon + 1);
            return -1;
        }
        size_t n = (size_t)(colon - cls);
        if (n >= sizeof c->threshold_class_name) n = sizeof c->threshold_class_name - 1;
        memcpy(c->threshold_class_name, cls, n);
        c->threshold_class_name[n] = 0;
        c->threshold_rule = NN_THRESH_MIN_RECALL;
        c->threshold_min_recall = (float)d;
        return 0;
    }
    snprintf(err, errlen, "threshold: expected a probability, equal_recall or min_recall:CLASS:RECALL, got '%s'", v);
    return -1;
}

/* Sets one key; returns 0, 1 = unknown section, 2 = unknown key, -1 = bad value. */
static int set_key(nn_config *c, const char *section, const char *name, const char *value,
                   char *err, size_t errlen) {
    int known_section = 0;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (!strcmp(section, sections[i])) known_section = 1;
    if (!known_section) {
        snprintf(err, errlen, "unknown section [%s] (known: data, model, train, augment, output)", section);
        return 1;
    }
    const key_def *k = NULL;
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name)) k = &keys[i];
    if (!k) {
        int len = snprintf(err, errlen, "unknown key '%s' in [%s] (known:", name, section);
        for (size_t i = 0; i < N_KEYS && len > 0 && (size_t)len < errlen; i++)
            if (!strcmp(keys[i].section, section))
                len += snprintf(err + len, errlen - (size_t)len, " %s", keys[i].name);
        if (len > 0 && (size_t)len < errlen) snprintf(err + len, errlen - (size_t)len, ")");
        return 2;
    }
    char vbuf[4096];
    snprintf(vbuf, sizeof vbuf, "%s", value);
    char *v = trim(vbuf);
    char *base = (char *)c + k->off;
    double d;
    switch (k->type) {
    case T_INT:
    case T_ULONG: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno) {
            snprintf(err, errlen, "%s.%s: '%s' is not an integer", section, name, v);
            return -1;
        }
        if (k->type == T_ULONG) {
            if (x < 0) {
                snprintf(err, errlen, "%s.%s: '%s' must not be negative", section, name, v);
                return -1;
            }
            *(unsigned long *)base = (unsigned long)x;
            return 0;
        }
        if (x < k->lo || x > k->hi) {
            snprintf(err, errlen, "%s.%s: %s out of range [%g, %g]", section, name, v, k->lo, k->hi);
            return -1;
        }
        *(int *)base = (int)x;
        return 0;
    }
    case T_FLOAT:
        if (parse_double(v, &d)) {
            snprintf(err, errlen, "%s.%s: '%s' is not a number", section, name, v);
            return -1;
        }
        if ((float)d < (float)k->lo || (float)d > (float)k->hi) {
            snprintf(err, errlen, "%s.%s: %s out of range [%g, %g]", section, name, v, k->lo, k->hi);
            return -1;
        }
        *(float *)base = (float)d;
        return 0;
    case T_BOOL:
        if (parse_bool(v, (int *)base)) {
            snprintf(err, errlen, "%s.%s: '%s' is not a boolean (true/false)", section, name, v);
            return -1;
        }
        return 0;
    case T_STR:
        if (k->off == offsetof(nn_config, threshold_class_name)) {
            char e2[256];
            if (parse_threshold(c, v, e2, sizeof e2)) {
                snprintf(err, errlen, "%s.%s: %s", section, name, e2);
                return -1;
            }
            if (c->threshold_rule != NN_THRESH_MIN_RECALL) c->threshold_class_name[0] = 0;
            return 0;
        }
        if (!*v) {
            snprintf(err, errlen, "%s.%s: empty value", section, name);
            return -1;
        }
        if (strlen(v) >= NN_CFG_PATH) {
            snprintf(err, errlen, "%s.%s: value too long", section, name);
            return -1;
        }
        strcpy(base, v);
        return 0;
    case T_PATHS:
    case T_CLASSES: {
        char e2[256];
        size_t item = k->type == T_PATHS ? NN_CFG_PATH : 64;
        int max = k->type == T_PATHS ? NN_CFG_MAX_LIST : NN_CFG_MAX_CLASSES;
        char tmp[NN_CFG_MAX_LIST * NN_CFG_PATH];
        int n = split_list(v, (char(*)[NN_CFG_PATH])tmp, max, item, e2, sizeof e2);
        if (n < 0) {
            snprintf(err, errlen, "%s.%s: %s", section, name, e2);
            return -1;
        }
        if (k->type == T_CLASSES) {
            if (n < 2) {
                snprintf(err, errlen, "%s.%s: at least 2 classes needed, got %d", section, name, n);
                return -1;
            }
            for (int i = 0; i < n; i++)
                for (int j = 0; j < i; j++)
                    if (!strcmp(tmp + i * item, tmp + j * item)) {
                        snprintf(err, errlen, "%s.%s: class '%s' given twice", section, name, tmp + i * item);
                        return -1;
                    }
        }
        memcpy(base, tmp, (size_t)n * item);
        *(int *)((char *)c + k->count_off) = n;
        return 0;
    }
    case T_SPLIT: {
        float f[3];
        char b2[256];
        snprintf(b2, sizeof b2, "%s", v);
        int n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(b2, ",/", &save); tok; tok = strtok_r(NULL, ",/", &save)) {
            if (n == 3 || parse_double(trim(tok), &d) || d < 0 || d > 100) {
                snprintf(err, errlen, "%s.%s: expected three fractions 'train, val, test', got '%s'", section, name, v);
                return -1;
            }
            f[n++] = (float)d;
        }
        if (n != 3) {
            snprintf(err, errlen, "%s.%s: expected three fractions 'train, val, test', got '%s'", section, name, v);
            return -1;
        }
        float s = f[0] + f[1] + f[2];
        if (s > 1.5f) { /* percentages */
            for (int i = 0; i < 3; i++) f[i] /= 100.0f;
            s /= 100.0f;
        }
        if (fabsf(s - 1.0f) > 1e-3f || f[0] <= 0) {
            snprintf(err, errlen, "%s.%s: fractions must sum to 1 with a non-empty train part, got '%s'", section, name, v);
            return -1;
        }
        memcpy(base, f, sizeof f);
        return 0;
    }
    case T_ENUM: {
        char opts[256];
        snprintf(opts, sizeof opts, "%s", k->enums);
        int idx = 0;
        char *save = NULL;
        for (char *tok = strtok_r(opts, "|", &save); tok; tok = strtok_r(NULL, "|", &save), idx++)
            if (!strcmp(tok, v)) {
                *(int *)base = idx;
                return 0;
            }
        snprintf(err, errlen, "%s.%s: '%s' is not one of %s", section, name, v, k->enums);
        return -1;
    }
    case T_FREEZE: {
        if (!strcmp(v, "all")) {
            c->freeze = NN_FREEZE_ALL;
            return 0;
        }
        if (!strcmp(v, "none")) {
            c->freeze = NN_FREEZE_NONE;
            return 0;
        }
        int nlast;
        char extra;
        if (sscanf(v, "last %d%c", &nlast, &extra) == 1 && nlast >= 1 && nlast <= 19) {
            c->freeze = NN_FREEZE_LAST;
            c->freeze_last = nlast;
            return 0;
        }
        snprintf(err, errlen, "%s.%s: expected all, none or 'last N' (N in 1..19), got '%s'", section, name, v);
        return -1;
    }
    }
    return -1;
}

void nn_config_defaults(nn_config *c) {
    memset(c, 0, sizeof *c);
    char err[512];
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!keys[i].def[0]) continue;
        if (set_key(c, keys[i].section, keys[i].name, keys[i].def, err, sizeof err))
            nn_fatal("config default %s.%s: %s", keys[i].section, keys[i].name, err);
    }
}

typedef struct {
    nn_config *c;
    const char *path;
    char err[1024];
    int failed;
} parse_ctx;

static int ini_cb(void *user, const char *section, const char *name, const char *value) {
    parse_ctx *p = user;
    if (p->failed) return 1; /* keep only the first message */
    char e[900];
    if (set_key(p->c, section, name, value, e, sizeof e)) {
        snprintf(p->err, sizeof p->err, "%s", e);
        p->failed = 1;
        return 0;
    }
    return 1;
}

int nn_config_load(nn_config *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return nn_set_error("%s: cannot open: %s", path, strerror(errno));
    /* Pre-scan: unknown sections (even empty ones), lines too long for inih. */
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strlen(line) >= 199 && line[strlen(line) - 1] != '\n') {
            fclose(f);
            return nn_set_error("%s:%d: line too long (at most 198 characters)", path, lineno);
        }
        char *t = trim(line);
        if (*t == '[') {
            char *e = strchr(t, ']');
            if (!e) {
                fclose(f);
                return nn_set_error("%s:%d: section header without ']'", path, lineno);
            }
            *e = 0;
            char *name = trim(t + 1);
            int ok = 0;
            for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
                if (!strcmp(name, sections[i])) ok = 1;
            if (!ok) {
                fclose(f);
                return nn_set_error("%s:%d: unknown section [%s] (known: data, model, train, augment, output)",
                                    path, lineno, name);
            }
        }
    }
    rewind(f);
    parse_ctx p = {.c = c, .path = path};
    int r = ini_parse_file(f, ini_cb, &p);
    fclose(f);
    if (r < 0) return nn_set_error("%s: cannot read", path);
    if (r > 0) {
        if (p.failed) return nn_set_error("%s:%d: %s", path, r, p.err);
        return nn_set_error("%s:%d: syntax error (expected 'key = value' or [section])", path, r);
    }
    return 0;
}

int nn_config_override(nn_config *c, const char *kv) {
    const char *eq = strchr(kv, '=');
    const char *dot = strchr(kv, '.');
    if (!eq || !dot || dot > eq)
        return nn_set_error("override '%s': expected section.key=value", kv);
    char section[64], name[64];
    size_t ns = (size_t)(dot - kv), nk = (size_t)(eq - dot - 1);
    if (ns == 0 || ns >= sizeof section || nk == 0 || nk >= sizeof name)
        return nn_set_error("override '%s': expected section.key=value", kv);
    memcpy(section, kv, ns);
    section[ns] = 0;
    memcpy(name, dot + 1, nk);
    name[nk] = 0;
    char err[900];
    if (set_key(c, trim(section), trim(name), eq + 1, err, sizeof err))
        return nn_set_error("override '%s': %s", kv, err);
    return 0;
}

int nn_config_validate(nn_config *c) {
    if (c->n_dirs + c->n_csv + c->n_voc == 0)
        return nn_set_error("config: no data: set data.dir, data.annotations or data.voc");
    if (c->input_size % 32)
        return nn_set_error("config: model.input_size %d is not a multiple of 32", c->input_size);
    if (c->downscale_min > c->downscale_max)
        return nn_set_error("config: augment.downscale_min %d > downscale_max %d", c->downscale_min, c->downscale_max);
    if (c->jpeg_min > c->jpeg_max)
        return nn_set_error("config: augment.jpeg_min %d > jpeg_max %d", c->jpeg_min, c->jpeg_max);
    if (c->folds && c->folds < 3)
        return nn_set_error("config: data.folds %d: cross-validation needs at least 3 parts (test, validation, train)", c->folds);
    if (c->folds && c->fold >= c->folds)
        return nn_set_error("config: data.fold %d is not a part of data.folds %d (0..%d)", c->fold, c->folds, c->folds - 1);
    if (!c->folds && c->fold)
        return nn_set_error("config: data.fold %d without data.folds", c->fold);
    if (!c->folds && c->split[1] <= 0 && (c->patience > 0 || c->threshold_rule != NN_THRESH_FIXED))
        return nn_set_error("config: early stopping and threshold selection need a validation split");
    c->threshold_class = -1;
    if (c->threshold_rule != NN_THRESH_FIXED) {
        if (c->n_classes != 2)
            return nn_set_error("config: train.threshold rules need exactly 2 classes");
        if (c->threshold_rule == NN_THRESH_MIN_RECALL) {
            for (int i = 0; i < c->n_classes; i++)
                if (!strcmp(c->classes[i], c->threshold_class_name)) c->threshold_class = i;
            if (c->threshold_class < 0)
                return nn_set_error("config: train.threshold: class '%s' is not in data.classes",
                                    c->threshold_class_name);
        }
    }
    return 0;
}

static void fmt_value(const nn_config *c, const key_def *k, char *out, size_t n) {
    const char *base = (const char *)c + k->off;
    switch (k->type) {
    case T_INT: snprintf(out, n, "%d", *(const int *)base); break;
    case T_ULONG: snprintf(out, n, "%lu", *(const unsigned long *)base); break;
    case T_FLOAT: {
        float f = *(const float *)base;
        snprintf(out, n, "%g", f); /* shortest form that reads back exactly */
        if ((float)strtod(out, NULL) != f) snprintf(out, n, "%.9g", f);
        break;
    }
    case T_BOOL: snprintf(out, n, "%s", *(const int *)base ? "true" : "false"); break;
    case T_STR:
        if (k->off == offsetof(nn_config, threshold_class_name)) {
            if (c->threshold_rule == NN_THRESH_FIXED) snprintf(out, n, "%g", c->threshold);
            else if (c->threshold_rule == NN_THRESH_EQUAL_RECALL) snprintf(out, n, "equal_recall");
            else snprintf(out, n, "min_recall:%s:%g", c->threshold_class_name, c->threshold_min_recall);
        } else {
            snprintf(out, n, "%s", base);
        }
        break;
    case T_PATHS:
    case T_CLASSES: {
        size_t item = k->type == T_PATHS ? NN_CFG_PATH : 64;
        int cnt = *(const int *)((const char *)c + k->count_off);
        size_t len = 0;
        out[0] = 0;
        for (int i = 0; i < cnt && len < n; i++)
            len += (size_t)snprintf(out + len, n - len, "%s%s", i ? ", " : "", base + (size_t)i * item);
        break;
    }
    case T_SPLIT: {
        const float *f = (const float *)base;
        snprintf(out, n, "%.6g, %.6g, %.6g", f[0], f[1], f[2]);
        break;
    }
    case T_ENUM: {
        char opts[256];
        snprintf(opts, sizeof opts, "%s", k->enums);
        int idx = 0, want = *(const int *)base;
        char *save = NULL;
        out[0] = 0;
        for (char *tok = strtok_r(opts, "|", &save); tok; tok = strtok_r(NULL, "|", &save), idx++)
            if (idx == want) snprintf(out, n, "%s", tok);
        break;
    }
    case T_FREEZE:
        if (c->freeze == NN_FREEZE_ALL) snprintf(out, n, "all");
        else if (c->freeze == NN_FREEZE_NONE) snprintf(out, n, "none");
        else snprintf(out, n, "last %d", c->freeze_last);
        break;
    }
}

void nn_config_write(const nn_config *c, FILE *f) {
    const char *sec = "";
    char v[8192];
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(sec, keys[i].section)) {
            sec = keys[i].section;
            fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
        }
        fmt_value(c, &keys[i], v, sizeof v);
        if (!v[0] && (keys[i].type == T_PATHS)) continue; /* empty list: not written */
        fprintf(f, "%s = %s\n", keys[i].name, v);
    }
}

void nn_config_print_keys(FILE *f) {
    const char *sec = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(sec, keys[i].section)) {
            sec = keys[i].section;
            fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
        }
        fprintf(f, "  %-16s = %-24s ; %s%s%s\n", keys[i].name, keys[i].def[0] ? keys[i].def : "(none)",
                keys[i].help, keys[i].enums ? ": " : "", keys[i].enums ? keys[i].enums : "");
    }
}
