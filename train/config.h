/* config.h — the training configuration: every [section] key of a
 * nnmask-train INI file, with its default, type and allowed range.
 *
 * Paths in a config are used as written (relative ones relative to the
 * current directory, i.e. the project root for train/configs/ *.ini).
 * Lists are comma separated. The full key list with defaults is printed by
 * `nnmask-train --help-config` (nn_config_print_keys()).
 */
#ifndef NN_TRAIN_CONFIG_H
#define NN_TRAIN_CONFIG_H

#include <stdio.h>

#define NN_CFG_MAX_LIST 8
#define NN_CFG_MAX_CLASSES 8
#define NN_CFG_PATH 512

typedef enum { NN_FREEZE_ALL, NN_FREEZE_NONE, NN_FREEZE_LAST } nn_freeze_mode;
typedef enum { NN_SCHED_CONSTANT, NN_SCHED_INVERSE_TIME, NN_SCHED_COSINE, NN_SCHED_STEP } nn_sched_kind;
typedef enum { NN_OPT_ADAM, NN_OPT_SGD } nn_opt_kind;
typedef enum { NN_BALANCE_NONE, NN_BALANCE_WEIGHTS, NN_BALANCE_SAMPLE } nn_balance_kind;
typedef enum { NN_FILL_NEAREST, NN_FILL_CONSTANT, NN_FILL_REFLECT } nn_fill_mode;
typedef enum { NN_THRESH_FIXED, NN_THRESH_EQUAL_RECALL, NN_THRESH_MIN_RECALL } nn_thresh_rule;

typedef struct {
    /* [data] */
    int n_dirs;                              /* class-folder roots */
    char dirs[NN_CFG_MAX_LIST][NN_CFG_PATH];
    int n_csv;                               /* annotated photos, CSV */
    char csv[NN_CFG_MAX_LIST][NN_CFG_PATH];
    int n_voc;                               /* annotated photos, Pascal VOC */
    char voc[NN_CFG_MAX_LIST][NN_CFG_PATH];
    int n_classes;
    char classes[NN_CFG_MAX_CLASSES][64];
    float split[3];                          /* train, val, test fractions */
    int folds, fold;                         /* cross-validation: fold of folds
                                                (folds 0 = use split) */
    unsigned long seed;
    int min_face;                            /* annotated faces smaller are dropped */
    nn_balance_kind balance;
    int balance_sources;                     /* balance per (source, class) */
    int cache_threads;                       /* 0 = train.threads */
    int max_per_class;                       /* 0 = all (quick experiments) */

    /* [model] */
    char backbone[NN_CFG_PATH];              /* safetensors file or "random" */
    float alpha;
    int input_size;
    int head_units;
    float dropout;
    nn_freeze_mode freeze;
    int freeze_last;                         /* N for freeze = last N */

    /* [train] */
    int epochs;
    int batch;
    nn_opt_kind optimizer;
    float lr;
    nn_sched_kind schedule;
    float decay;                             /* inverse_time: lr/(1+decay*step) */
    int step_epochs;                         /* step: every N epochs ... */
    float step_gamma;                        /* ... multiply by gamma */
    float min_lr;                            /* cosine floor */
    int warmup_epochs;
    float momentum;                          /* sgd */
    int nesterov;
    float beta1, beta2, eps;                 /* adam */
    float weight_decay;
    int patience;                            /* early stopping, 0 = off */
    int threads;                             /* compute threads, 0 = all */
    int loader_threads;                      /* augmentation threads */
    nn_thresh_rule threshold_rule;
    float threshold;                         /* fixed rule */
    int threshold_class;                     /* min_recall: class index */
    char threshold_class_name[64];
    float threshold_min_recall;
    char threshold_source[NN_CFG_PATH];      /* validation items the threshold is chosen
                                                on: "all" or one source's name */
    int precompute;                          /* frozen + no aug: features once */
    int aug_copies;                          /* frozen + aug: features of K augmented
                                                copies once (0 = augment every batch) */

    /* [augment] (Keras ImageDataGenerator semantics where one exists) */
    int aug_enabled;
    float rotation;                          /* degrees, +- */
    float zoom;                              /* scale in [1-z, 1+z] */
    float shift_x, shift_y;                  /* fraction of the size */
    float shear;                             /* degrees (Keras' shear_range) */
    int hflip;
    float brightness;                        /* factor in [1-b, 1+b] */
    nn_fill_mode fill;
    float contrast, saturation, hue;         /* factor ranges; hue in turns */
    float grey_prob;
    float downscale_prob;
    int downscale_min, downscale_max;        /* face size in px */
    float blur_prob, blur_sigma;             /* gaussian sigma in [0.3, max] px */
    float motion_blur_prob;
    int motion_blur_max;                     /* length in px */
    float jpeg_prob;
    int jpeg_min, jpeg_max;
    float noise_prob, noise_std;             /* std in 0..255 units, max */
    float box_jitter;                        /* crop-box scale/shift, fraction */
    float perspective;                       /* corner displacement, fraction */
    int preview;                             /* write augment_preview.png */

    /* [output] */
    char out_dir[NN_CFG_PATH];
    int plots;
} nn_config;

void nn_config_defaults(nn_config *c);
/* Parses an INI file over the current values. Unknown section/key or bad
 * value: -1 with nn_error() = "file:line: message". */
int nn_config_load(nn_config *c, const char *path);
/* "section.key=value"; errors read "override 'x': message". */
int nn_config_override(nn_config *c, const char *kv);
/* Cross-key checks (at least one source, split sums to 1, ...). */
int nn_config_validate(nn_config *c);
/* Writes the effective configuration as INI (for the run folder). */
void nn_config_write(const nn_config *c, FILE *f);
void nn_config_print_keys(FILE *f);

#endif
