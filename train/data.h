/* data.h — the labelled images of a training run: scanning class folders and
 * annotated photos (CSV, Pascal VOC), content-hash dedupe, the seeded
 * stratified split (by photo for annotated photos), split.csv, and the
 * decode-once image cache.
 */
#ifndef NN_TRAIN_DATA_H
#define NN_TRAIN_DATA_H

#include <stdint.h>

#include "config.h"
#include "nnmask.h"

enum { NN_SPLIT_TRAIN = 0, NN_SPLIT_VAL = 1, NN_SPLIT_TEST = 2 };

/* Context factor of cached training crops from annotated photos: the cache
 * holds the classifier's crop enlarged by this, so crop-box jitter sees real
 * pixels around the face. */
#define NN_DATA_CONTEXT 1.3f

typedef struct {
    char *path;        /* image file (the photo for annotated faces) */
    int label;         /* class index */
    int source;        /* index into nn_dataset.sources */
    int has_box;       /* annotated face: box in the photo */
    float box[4];      /* x0, y0, x1, y1 */
    int group;         /* photo id (split unit); unique per item for folders */
    int split;         /* NN_SPLIT_* */
    uint64_t hash[2];  /* content hash of the file */
    nn_image img;      /* cached pixels (nn_data_cache) */
    float ctx;         /* context factor of img: 1 or NN_DATA_CONTEXT */
} nn_item;

typedef struct {
    int n, cap;
    nn_item *items;
    int n_sources;
    char sources[24][128];   /* short names: folder / csv base names */
    int n_classes;
    char classes[NN_CFG_MAX_CLASSES][64];
    int n_skipped;           /* unreadable files, reported on stderr */
    int n_duplicates;        /* exact duplicates removed */
} nn_dataset;

void nn_dataset_free(nn_dataset *ds);
/* Scans every source of the config, hashes each file, removes exact
 * duplicates (reported as a count), drops annotated faces below min_face and
 * labels not in the class list. Files order is sorted, so runs repeat.
 * Unreadable files are reported by name on stderr and skipped. -1 + error
 * when a source folder/CSV is missing or there is no image at all. */
int nn_dataset_scan(nn_dataset *ds, const nn_config *c);
/* Seeded split; stratified by class for folder images, by photo for
 * annotated faces (never a photo's faces in two parts). */
void nn_dataset_split(nn_dataset *ds, const float frac[3], uint64_t seed);
/* Cross-validation: the same stratification over `folds` equal parts (the
 * parts depend on the seed only, so the folds' test parts cover every item
 * exactly once); part `fold` is the test split, part fold+1 (mod folds) the
 * validation split, the rest trains. folds >= 3. */
void nn_dataset_split_fold(nn_dataset *ds, int folds, int fold, uint64_t seed);
/* Decodes each image once (threads) and keeps it at `size` (squashed to
 * size x size for folder images, face crops via nn_face_crop; training crops
 * of annotated faces with NN_DATA_CONTEXT context when context != 0).
 * Undecodable files are reported by name and removed. -1 if nothing is left. */
int nn_data_cache(nn_dataset *ds, int size, int threads, int context);
/* split.csv: split,label,source,path,x0,y0,x1,y1 (box empty for folders). */
int nn_split_write(const nn_dataset *ds, const char *path);
/* Reads split.csv; keeps rows whose split is in mask (1<<NN_SPLIT_*); labels
 * must be in `classes` (n_classes > 0) or are collected into ds->classes. */
int nn_split_read(nn_dataset *ds, const char *path, int mask, const char (*classes)[64],
                  int n_classes);
/* A folder of class folders (names from classes) as a dataset, all "test". */
int nn_dataset_from_dir(nn_dataset *ds, const char *dir, const char (*classes)[64], int n_classes);
/* Counts per split and class into counts[3][n_classes]. */
void nn_dataset_counts(const nn_dataset *ds, int counts[3][NN_CFG_MAX_CLASSES]);
/* The eval-time pixels of an item at size x size (what the apps compute):
 * squashed image or nn_face_crop; from the cache when it holds them. */
int nn_item_eval_image(const nn_item *it, nn_image *out, int size);

#endif
