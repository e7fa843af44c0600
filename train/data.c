/* data.c — labelled images for training and evaluation: class folders and
 * annotated photos (CSV, VOC), dedupe by content hash, seeded split, split.csv, cache. */

#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "facecrop.h"

#define MAX_FILE_BYTES ((size_t)256 << 20)

/* ---- small helpers ---- */

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) nn_fatal("out of memory");
    return d;
}

static nn_item *push_item(nn_dataset *ds) {
    if (ds->n == ds->cap) {
        int cap = ds->cap ? ds->cap * 2 : 256;
        nn_item *p = realloc(ds->items, (size_t)cap * sizeof *p);
        if (!p) nn_fatal("out of memory");
        ds->items = p;
        ds->cap = cap;
    }
    nn_item *it = &ds->items[ds->n++];
    memset(it, 0, sizeof *it);
    it->ctx = 1.0f;
    it->group = -1;
    return it;
}

static void item_free(nn_item *it) {
    free(it->path);
    nn_image_free(&it->img);
}

void nn_dataset_free(nn_dataset *ds) {
    for (int i = 0; i < ds->n; i++) item_free(&ds->items[i]);
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}

static int class_index(const nn_dataset *ds, const char *name) {
    for (int i = 0; i < ds->n_classes; i++)
        if (!strcmp(ds->classes[i], name)) return i;
    return -1;
}

static const char *base_name(const char *path, char *buf, size_t n) {
    snprintf(buf, n, "%s", path);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
    char *s = strrchr(buf, '/');
    return s ? s + 1 : buf;
}

static void dir_name(const char *path, char *buf, size_t n) {
    snprintf(buf, n, "%s", path);
    char *s = strrchr(buf, '/');
    if (s) *s = 0;
    else snprintf(buf, n, ".");
}

static int add_source(nn_dataset *ds, const char *name) {
    if (ds->n_sources == (int)(sizeof ds->sources / sizeof ds->sources[0]))
        return nn_set_error("too many data sources");
    char nm[128];
    snprintf(nm, sizeof nm, "%s", name);
    for (int k = 2;; k++) { /* unique names */
        int clash = 0;
        for (int i = 0; i < ds->n_sources; i++)
            if (!strcmp(ds->sources[i], nm)) clash = 1;
        if (!clash) break;
        snprintf(nm, sizeof nm, "%.100s_%d", name, k);
    }
    snprintf(ds->sources[ds->n_sources], sizeof ds->sources[0], "%s", nm);
    return ds->n_sources++;
}

/* 128-bit content hash: two 64-bit multiply-xorshift lanes over 8-byte words. */
static void hash128(const uint8_t *p, size_t n, uint64_t out[2]) {
    uint64_t a = 0x9e3779b97f4a7c15ULL ^ n, b = 0xc2b2ae3d27d4eb4fULL + n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        a = (a ^ w) * 0xff51afd7ed558ccdULL;
        a ^= a >> 32;
        b = (b + w) * 0x94d049bb133111ebULL;
        b ^= b >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    a = (a ^ w) * 0xff51afd7ed558ccdULL;
    b = (b + w) * 0x94d049bb133111ebULL;
    a ^= a >> 33;
    b ^= b >> 31;
    out[0] = a * 0xc4ceb9fe1a85ec53ULL;
    out[1] = b ^ (b >> 27);
}

static int hash_file(const char *path, uint64_t h[2]) {
    uint8_t *data;
    size_t len;
    if (nn_file_read(path, &data, &len, MAX_FILE_BYTES)) return -1;
    hash128(data, len, h);
    free(data);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists regular files under dir (recursively), sorted; hidden ones skipped. */
static int list_files(const char *dir, char ***out, int *n, int *cap) {
    DIR *d = opendir(dir);
    if (!d) return nn_set_error("%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    char **local = NULL;
    int nl = 0, capl = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (nl == capl) {
            capl = capl ? 2 * capl : 64;
            local = realloc(local, (size_t)capl * sizeof *local);
            if (!local) nn_fatal("out of memory");
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        local[nl] = malloc(len);
        if (!local[nl]) nn_fatal("out of memory");
        snprintf(local[nl], len, "%s/%s", dir, e->d_name);
        nl++;
    }
    closedir(d);
    qsort(local, (size_t)nl, sizeof *local, cmp_str);
    for (int i = 0; i < nl; i++) {
        struct stat st;
        if (stat(local[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            list_files(local[i], out, n, cap); /* a bad subfolder is only skipped */
            free(local[i]);
            continue;
        }
        if (stat(local[i], &st) != 0 || !S_ISREG(st.st_mode)) {
            free(local[i]);
            continue;
        }
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 256;
            *out = realloc(*out, (size_t)*cap * sizeof **out);
            if (!*out) nn_fatal("out of memory");
        }
        (*out)[(*n)++] = local[i];
    }
    free(local);
    return 0;
}

/* DIR/<class>/... for every class; max_per_class 0 = all. */
static int scan_class_dirs(nn_dataset *ds, const char *dir, int source, int max_per_class) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nn_set_error("%s: data folder not found", dir);
    int found_any = 0;
    for (int c = 0; c < ds->n_classes; c++) {
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, ds->classes[c]);
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "nnmask: warning: %s: no folder for class '%s'\n", dir, ds->classes[c]);
            continue;
        }
        char **files = NULL;
        int n = 0, cap = 0;
        if (list_files(sub, &files, &n, &cap)) return -1;
        for (int i = 0; i < n; i++) {
            if (max_per_class > 0 && i >= max_per_class) {
                free(files[i]);
                continue;
            }
            nn_item *it = push_item(ds);
            it->path = files[i];
            it->label = c;
            it->source = source;
            found_any = 1;
        }
        free(files);
    }
    if (!found_any) return nn_set_error("%s: no images in the class folders", dir);
    return 0;
}

/* Splits one CSV line in place into at most max fields (quotes honoured). */
static int csv_fields(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        if (*p == '"') {
            p++;
            f[n++] = p;
            char *w = p;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"') p++;
                *w++ = *p++;
            }
            if (*p == '"') p++;
            *w = 0;
            /* p now at ',' or end; w may be before p */
            if (*p == ',') p++;
            else break;
            continue;
        }
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    for (int i = 0; i < n; i++) {
        size_t l = strlen(f[i]);
        while (l && (f[i][l - 1] == '\r' || f[i][l - 1] == '\n')) f[i][--l] = 0;
    }
    return n;
}

typedef struct {
    int dropped_small, dropped_label, bad_rows;
} ann_stats;

static void add_face(nn_dataset *ds, const char *img_path, const char *label, float x0, float y0,
                     float x1, float y1, int source, int min_face, ann_stats *s) {
    int c = class_index(ds, label);
    if (c < 0) {
        s->dropped_label++;
        return;
    }
    if (!(x1 > x0 && y1 > y0) || fminf(x1 - x0, y1 - y0) < (float)min_face) {
        s->dropped_small++;
        return;
    }
    nn_item *it = push_item(ds);
    it->path = xstrdup(img_path);
    it->label = c;
    it->source = source;
    it->has_box = 1;
    it->box[0] = x0;
    it->box[1] = y0;
    it->box[2] = x1;
    it->box[3] = y1;
}

static int cmp_item_path(const void *a, const void *b) {
    const nn_item *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c) return c;
    return x->group - y->group; /* original order (group holds it while scanning) */
}

/* Faces of one photo next to each other (sorted by path, stable). */
static void sort_faces(nn_dataset *ds, int n0) {
    for (int i = n0; i < ds->n; i++) ds->items[i].group = i;
    qsort(ds->items + n0, (size_t)(ds->n - n0), sizeof *ds->items, cmp_item_path);
    for (int i = n0; i < ds->n; i++) ds->items[i].group = -1;
}

static int scan_csv(nn_dataset *ds, const char *csv, int source, int min_face) {
    FILE *f = fopen(csv, "r");
    if (!f) return nn_set_error("%s: cannot open: %s", csv, strerror(errno));
    char dir[1024];
    dir_name(csv, dir, sizeof dir);
    char line[4096];
    int lineno = 0, n0 = ds->n;
    ann_stats s = {0};
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *fl[8];
        if (line[0] == '\n' || line[0] == '\r' || line[0] == 0) continue;
        int n = csv_fields(line, fl, 8);
        if (lineno == 1 && n >= 1 && !strcmp(fl[0], "image")) continue; /* header */
        char *end[4];
        float b[4];
        int ok = n == 8;
        for (int k = 0; ok && k < 4; k++) {
            b[k] = strtof(fl[4 + k], &end[k]);
            if (end[k] == fl[4 + k] || !isfinite(b[k])) ok = 0;
        }
        if (!ok) {
            fclose(f);
            return nn_set_error("%s:%d: expected image,width,height,label,xmin,ymin,xmax,ymax", csv, lineno);
        }
        /* the image next to the CSV, or in its images/ or photos/ folder */
        char path[2048];
        static const char *sub[3] = {"", "images/", "photos/"};
        for (int k = 0; k < 3; k++) {
            struct stat st;
            snprintf(path, sizeof path, "%s/%s%s", dir, sub[k], fl[0]);
            if (stat(path, &st) == 0) break;
            if (k == 2) snprintf(path, sizeof path, "%s/%s", dir, fl[0]);
        }
        add_face(ds, path, fl[3], b[0], b[1], b[2], b[3], source, min_face, &s);
    }
    fclose(f);
    sort_faces(ds, n0);
    if (s.dropped_small || s.dropped_label)
        fprintf(stderr, "nnmask: %s: %d faces kept, %d smaller than %d px and %d with other labels left out\n",
                csv, ds->n - n0, s.dropped_small, min_face, s.dropped_label);
    if (ds->n == n0) return nn_set_error("%s: no usable face annotations", csv);
    return 0;
}

/* Text between <tag> and </tag> starting at p (NULL if absent). */
static const char *xml_tag(const char *p, const char *end, const char *tag, char *out, size_t n) {
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(p, open);
    if (!a || (end && a >= end)) return NULL;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b || (end && b > end)) return NULL;
    size_t len = (size_t)(b - a);
    while (len && (*a == ' ' || *a == '\n' || *a == '\r' || *a == '\t')) a++, len--;
    while (len && (a[len - 1] == ' ' || a[len - 1] == '\n' || a[len - 1] == '\r' || a[len - 1] == '\t')) len--;
    if (len >= n) len = n - 1;
    memcpy(out, a, len);
    out[len] = 0;
    return b + strlen(close);
}

static int scan_voc(nn_dataset *ds, const char *dir, int source, int min_face) {
    char adir[1024];
    struct stat st;
    snprintf(adir, sizeof adir, "%s/annotations", dir);
    if (stat(adir, &st) != 0 || !S_ISDIR(st.st_mode)) snprintf(adir, sizeof adir, "%s", dir);
    char **files = NULL;
    int n = 0, cap = 0, n0 = ds->n;
    if (list_files(adir, &files, &n, &cap)) return -1;
    ann_stats s = {0};
    for (int i = 0; i < n; i++) {
        size_t l = strlen(files[i]);
        if (l < 4 || strcasecmp(files[i] + l - 4, ".xml")) {
            free(files[i]);
            continue;
        }
        uint8_t *data;
        size_t len;
        if (nn_file_read(files[i], &data, &len, 16 << 20)) {
            fprintf(stderr, "nnmask: %s, skipped\n", nn_error());
            free(files[i]);
            continue;
        }
        char *xml = malloc(len + 1);
        if (!xml) nn_fatal("out of memory");
        memcpy(xml, data, len);
        xml[len] = 0;
        free(data);
        char fname[512], path[2048] = "";
        if (!xml_tag(xml, NULL, "filename", fname, sizeof fname)) {
            fprintf(stderr, "nnmask: %s: no <filename>, skipped\n", files[i]);
            s.bad_rows++;
        } else {
            const char *cand[3] = {"%s/images/%s", "%s/%s", NULL};
            char xdir[1024];
            dir_name(files[i], xdir, sizeof xdir);
            for (int k = 0; cand[k]; k++) {
                snprintf(path, sizeof path, cand[k], dir, fname);
                if (stat(path, &st) == 0) break;
                snprintf(path, sizeof path, "%s/%s", xdir, fname);
                if (stat(path, &st) == 0) break;
            }
            const char *p = xml;
            const char *obj;
            while ((obj = strstr(p, "<object>"))) {
                const char *oend = strstr(obj, "</object>");
                if (!oend) break;
                char name[128], v[4][64];
                const char *tags[4] = {"xmin", "ymin", "xmax", "ymax"};
                int ok = xml_tag(obj, oend, "name", name, sizeof name) != NULL;
                float b[4];
                for (int k = 0; ok && k < 4; k++) {
                    ok = xml_tag(obj, oend, tags[k], v[k], sizeof v[k]) != NULL;
                    if (ok) b[k] = strtof(v[k], NULL);
                }
                if (ok) add_face(ds, path, name, b[0], b[1], b[2], b[3], source, min_face, &s);
                else s.bad_rows++;
                p = oend + 9;
            }
        }
        free(xml);
        free(files[i]);
    }
    free(files);
    sort_faces(ds, n0);
    if (s.dropped_small || s.dropped_label || s.bad_rows)
        fprintf(stderr, "nnmask: %s: %d faces kept, %d smaller than %d px, %d with other labels, %d unreadable left out\n",
                dir, ds->n - n0, s.dropped_small, min_face, s.dropped_label, s.bad_rows);
    if (ds->n == n0) return nn_set_error("%s: no usable VOC face annotations", dir);
    return 0;
}

/* ---- hashing and dedupe ---- */

typedef struct {
    nn_dataset *ds;
    atomic_int next;
    char **errs; /* per item: unreadable message */
} hash_job;

static void *hash_worker(void *arg) {
    hash_job *j = arg;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->ds->n) break;
        nn_item *it = &j->ds->items[i];
        /* faces of one photo share its hash: hash the first only */
        if (i > 0 && it->has_box && j->ds->items[i - 1].has_box &&
            !strcmp(j->ds->items[i - 1].path, it->path))
            continue;
        if (hash_file(it->path, it->hash)) j->errs[i] = xstrdup(nn_error());
    }
    return NULL;
}

static int run_threads(void *(*fn)(void *), void *arg, int threads) {
    if (threads < 1) threads = 1;
    if (threads > 32) threads = 32;
    pthread_t th[32];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&th[started], NULL, fn, arg) == 0) started++;
    fn(arg);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    return 0;
}

typedef struct {
    uint64_t h0, h1;
    float box[4];
    int idx;
} dkey;

static int cmp_dkey(const void *a, const void *b) {
    const dkey *x = a, *y = b;
    if (x->h0 != y->h0) return x->h0 < y->h0 ? -1 : 1;
    if (x->h1 != y->h1) return x->h1 < y->h1 ? -1 : 1;
    int c = memcmp(x->box, y->box, sizeof x->box);
    if (c) return c;
    return x->idx - y->idx;
}

/* Removes items flagged in drop[] keeping order. */
static void compact(nn_dataset *ds, const char *drop) {
    int w = 0;
    for (int i = 0; i < ds->n; i++) {
        if (drop[i]) {
            item_free(&ds->items[i]);
            continue;
        }
        ds->items[w++] = ds->items[i];
    }
    ds->n = w;
}

int nn_dataset_scan(nn_dataset *ds, const nn_config *c) {
    memset(ds, 0, sizeof *ds);
    ds->n_classes = c->n_classes;
    memcpy(ds->classes, c->classes, sizeof ds->classes);
    char nb[1024];
    for (int i = 0; i < c->n_dirs; i++) {
        int s = add_source(ds, base_name(c->dirs[i], nb, sizeof nb));
        if (s < 0 || scan_class_dirs(ds, c->dirs[i], s, c->max_per_class)) return -1;
    }
    for (int i = 0; i < c->n_csv; i++) {
        char d[1024];
        dir_name(c->csv[i], d, sizeof d);
        int s = add_source(ds, base_name(d, nb, sizeof nb));
        if (s < 0 || scan_csv(ds, c->csv[i], s, c->min_face)) return -1;
    }
    for (int i = 0; i < c->n_voc; i++) {
        int s = add_source(ds, base_name(c->voc[i], nb, sizeof nb));
        if (s < 0 || scan_voc(ds, c->voc[i], s, c->min_face)) return -1;
    }
    /* hash in parallel (reads every file once) */
    hash_job j = {.ds = ds};
    atomic_init(&j.next, 0);
    j.errs = calloc((size_t)ds->n + 1, sizeof *j.errs);
    char *drop = calloc((size_t)ds->n + 1, 1);
    if (!j.errs || !drop) nn_fatal("out of memory");
    run_threads(hash_worker, &j, c->cache_threads > 0 ? c->cache_threads : nn_threads_get());
    for (int i = 0; i < ds->n; i++) {
        nn_item *it = &ds->items[i];
        if (i > 0 && it->has_box && ds->items[i - 1].has_box && !strcmp(ds->items[i - 1].path, it->path)) {
            memcpy(it->hash, ds->items[i - 1].hash, sizeof it->hash);
            if (drop[i - 1]) drop[i] = 1;
            continue;
        }
        if (j.errs[i]) {
            fprintf(stderr, "nnmask: %s; skipped\n", j.errs[i]);
            ds->n_skipped++;
            drop[i] = 1;
            free(j.errs[i]);
        }
    }
    free(j.errs);
    /* exact duplicates: same content (and same box for faces) */
    dkey *k = malloc(((size_t)ds->n + 1) * sizeof *k);
    if (!k) nn_fatal("out of memory");
    for (int i = 0; i < ds->n; i++) {
        k[i].h0 = ds->items[i].hash[0];
        k[i].h1 = ds->items[i].hash[1];
        memcpy(k[i].box, ds->items[i].box, sizeof k[i].box);
        k[i].idx = i;
    }
    qsort(k, (size_t)ds->n, sizeof *k, cmp_dkey);
    int conflicts = 0;
    for (int i = 1; i < ds->n; i++) {
        if (drop[k[i].idx]) continue;
        if (k[i].h0 == k[i - 1].h0 && k[i].h1 == k[i - 1].h1 && !memcmp(k[i].box, k[i - 1].box, sizeof k[i].box)) {
            int first = k[i - 1].idx; /* sorted by idx within equal keys */
            for (int b = i - 1; b >= 0 && k[b].h0 == k[i].h0 && k[b].h1 == k[i].h1 &&
                                !memcmp(k[b].box, k[i].box, sizeof k[i].box); b--)
                first = k[b].idx;
            if (ds->items[first].label != ds->items[k[i].idx].label) conflicts++;
            drop[k[i].idx] = 1;
            ds->n_duplicates++;
        }
    }
    free(k);
    compact(ds, drop);
    free(drop);
    if (conflicts)
        fprintf(stderr, "nnmask: warning: %d files appear under two classes; kept the first copy\n", conflicts);
    /* groups: folder items are their own group, faces grouped by photo */
    int g = 0;
    for (int i = 0; i < ds->n; i++) {
        nn_item *it = &ds->items[i];
        if (it->has_box && i > 0 && ds->items[i - 1].has_box && !strcmp(ds->items[i - 1].path, it->path))
            it->group = ds->items[i - 1].group;
        else
            it->group = g++;
    }
    if (ds->n == 0) return nn_set_error("no usable images in the configured data");
    return 0;
}

/* ---- split ---- */

/* Assigns every item a part 0..P-1 (parts[] per item). Folder images:
 * stratified per (source, class), shuffled with the seed, part sizes
 * lround(n * frac) in part order with the last taking the rest (folds: the
 * i-th of n in part i*P/n). Annotated faces: by photo (group), per source,
 * stratified: photos are taken in a seeded random order and each goes to the
 * part that most needs its faces' classes (wanted minus got, per class,
 * relative to the class's total), so that a rare class (unmasked faces
 * cluster in a few photos) lands in every part in proportion, not by luck;
 * ties go to the lower part. */
static void split_parts(nn_dataset *ds, int P, const double *frac, int folds, uint64_t seed, int *parts) {
    nn_rng rng;
    for (int s = 0; s < ds->n_sources; s++) {
        for (int c = 0; c < ds->n_classes; c++) {
            int n = 0;
            for (int i = 0; i < ds->n; i++)
                if (!ds->items[i].has_box && ds->items[i].source == s && ds->items[i].label == c) n++;
            if (!n) continue;
            int *idx = malloc((size_t)n * sizeof *idx);
            if (!idx) nn_fatal("out of memory");
            n = 0;
            for (int i = 0; i < ds->n; i++)
                if (!ds->items[i].has_box && ds->items[i].source == s && ds->items[i].label == c) idx[n++] = i;
            nn_rng_seed(&rng, seed * 1000003ULL + (uint64_t)s * 131 + (uint64_t)c);
            nn_rng_shuffle(&rng, idx, n);
            if (folds) {
                for (int i = 0; i < n; i++) parts[idx[i]] = (int)((int64_t)i * P / n);
            } else {
                int start = 0;
                for (int p = 0; p < P; p++) {
                    int len = p == P - 1 ? n - start : (int)lround(n * frac[p]);
                    if (len > n - start) len = n - start;
                    for (int i = start; i < start + len; i++) parts[idx[i]] = p;
                    start += len;
                }
            }
            free(idx);
        }
    }
    for (int s = 0; s < ds->n_sources; s++) {
        int ng = 0, nf = 0, maxg = 0, K = ds->n_classes;
        for (int i = 0; i < ds->n; i++)
            if (ds->items[i].has_box && ds->items[i].source == s) {
                nf++;
                if (ds->items[i].group + 1 > maxg) maxg = ds->items[i].group + 1;
            }
        if (!nf) continue;
        int *count = calloc((size_t)maxg * K, sizeof *count); /* [group][class] */
        int *groups = malloc((size_t)maxg * sizeof *groups);
        int *assign = malloc((size_t)maxg * sizeof *assign);
        double *got = calloc((size_t)P * K, sizeof *got);     /* [part][class] */
        if (!count || !groups || !assign || !got) nn_fatal("out of memory");
        double total[NN_CFG_MAX_CLASSES] = {0};
        for (int i = 0; i < ds->n; i++)
            if (ds->items[i].has_box && ds->items[i].source == s) {
                count[(size_t)ds->items[i].group * K + ds->items[i].label]++;
                total[ds->items[i].label]++;
            }
        for (int g = 0; g < maxg; g++) {
            int any = 0;
            for (int k = 0; k < K; k++) any += count[(size_t)g * K + k];
            if (any) groups[ng++] = g;
        }
        nn_rng_seed(&rng, seed * 1000003ULL + 7777 + (uint64_t)s);
        nn_rng_shuffle(&rng, groups, ng);
        for (int j = 0; j < ng; j++) {
            int g = groups[j], best = P - 1;
            double best_need = -INFINITY;
            for (int p = 0; p < P; p++) {
                double need = 0;
                for (int k = 0; k < K; k++) {
                    int c = count[(size_t)g * K + k];
                    if (!c || !total[k]) continue;
                    /* fraction of the class still wanted, minus half of what
                     * this photo adds (so a big photo does not overshoot) */
                    need += c * ((frac[p] * total[k] - got[(size_t)p * K + k]) - 0.5 * c) / total[k];
                }
                if (frac[p] <= 0) need = -INFINITY;
                if (need > best_need + 1e-12) {
                    best_need = need;
                    best = p;
                }
            }
            assign[g] = best;
            for (int k = 0; k < K; k++) got[(size_t)best * K + k] += count[(size_t)g * K + k];
        }
        for (int i = 0; i < ds->n; i++)
            if (ds->items[i].has_box && ds->items[i].source == s) parts[i] = assign[ds->items[i].group];
        free(count);
        free(groups);
        free(assign);
        free(got);
    }
}

void nn_dataset_split(nn_dataset *ds, const float frac[3], uint64_t seed) {
    /* parts in the order test, validation, train (test first on ties) */
    static const int part_split[3] = {NN_SPLIT_TEST, NN_SPLIT_VAL, NN_SPLIT_TRAIN};
    const double f[3] = {frac[2], frac[1], frac[0]};
    int *parts = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *parts);
    if (!parts) nn_fatal("out of memory");
    split_parts(ds, 3, f, 0, seed, parts);
    for (int i = 0; i < ds->n; i++) ds->items[i].split = part_split[parts[i]];
    free(parts);
}

void nn_dataset_split_fold(nn_dataset *ds, int folds, int fold, uint64_t seed) {
    if (folds < 3 || fold < 0 || fold >= folds) nn_fatal("nn_dataset_split_fold: fold %d of %d", fold, folds);
    double *f = malloc((size_t)folds * sizeof *f);
    int *parts = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *parts);
    if (!f || !parts) nn_fatal("out of memory");
    for (int p = 0; p < folds; p++) f[p] = 1.0 / folds;
    split_parts(ds, folds, f, 1, seed, parts);
    for (int i = 0; i < ds->n; i++)
        ds->items[i].split = parts[i] == fold                   ? NN_SPLIT_TEST
                             : parts[i] == (fold + 1) % folds ? NN_SPLIT_VAL
                                                                : NN_SPLIT_TRAIN;
    free(parts);
    free(f);
}

void nn_dataset_counts(const nn_dataset *ds, int counts[3][NN_CFG_MAX_CLASSES]) {
    memset(counts, 0, sizeof(int) * 3 * NN_CFG_MAX_CLASSES);
    for (int i = 0; i < ds->n; i++) counts[ds->items[i].split][ds->items[i].label]++;
}

/* ---- cache ---- */

typedef struct {
    nn_dataset *ds;
    int size, context;
    atomic_int next;
    int *unit_start; /* runs of items sharing a photo */
    int n_units;
    char **errs;     /* per unit */
} cache_job;

static int make_cached(nn_item *it, const nn_image *src, int size, int context) {
    if (!it->has_box) {
        it->ctx = 1.0f;
        return nn_image_resize(&it->img, src, size, size);
    }
    if (context && it->split == NN_SPLIT_TRAIN) {
        float b[4];
        nn_face_square(b, it->box[0], it->box[1], it->box[2], it->box[3], NN_DATA_CONTEXT);
        int cs = (int)lroundf(size * NN_DATA_CONTEXT);
        it->ctx = NN_DATA_CONTEXT;
        return nn_image_crop_resize(&it->img, src, b[0], b[1], b[2], b[3], cs, cs);
    }
    it->ctx = 1.0f;
    return nn_face_crop(&it->img, src, it->box[0], it->box[1], it->box[2], it->box[3], size);
}

static void *cache_worker(void *arg) {
    cache_job *j = arg;
    for (;;) {
        int u = atomic_fetch_add(&j->next, 1);
        if (u >= j->n_units) break;
        int a = j->unit_start[u], b = j->unit_start[u + 1];
        nn_image src = {0};
        if (nn_image_load(&src, j->ds->items[a].path)) {
            j->errs[u] = xstrdup(nn_error());
            continue;
        }
        for (int i = a; i < b; i++) {
            nn_item *it = &j->ds->items[i];
            if (make_cached(it, &src, j->size, j->context) && !j->errs[u]) {
                char msg[1200];
                snprintf(msg, sizeof msg, "%s: %s", it->path, nn_error());
                j->errs[u] = xstrdup(msg);
            }
        }
        nn_image_free(&src);
    }
    return NULL;
}

int nn_data_cache(nn_dataset *ds, int size, int threads, int context) {
    cache_job j = {.ds = ds, .size = size, .context = context};
    atomic_init(&j.next, 0);
    j.unit_start = malloc(((size_t)ds->n + 1) * sizeof(int));
    j.errs = calloc((size_t)ds->n + 1, sizeof(char *));
    if (!j.unit_start || !j.errs) nn_fatal("out of memory");
    for (int i = 0; i < ds->n; i++)
        if (i == 0 || !ds->items[i].has_box || !ds->items[i - 1].has_box ||
            strcmp(ds->items[i].path, ds->items[i - 1].path))
            j.unit_start[j.n_units++] = i;
    j.unit_start[j.n_units] = ds->n;
    run_threads(cache_worker, &j, threads);
    char *drop = calloc((size_t)ds->n + 1, 1);
    if (!drop) nn_fatal("out of memory");
    for (int u = 0; u < j.n_units; u++) {
        if (!j.errs[u]) continue;
        fprintf(stderr, "nnmask: %s; skipped\n", j.errs[u]);
        free(j.errs[u]);
        ds->n_skipped++;
        for (int i = j.unit_start[u]; i < j.unit_start[u + 1]; i++) drop[i] = 1;
    }
    compact(ds, drop);
    free(drop);
    free(j.errs);
    free(j.unit_start);
    if (ds->n == 0) return nn_set_error("no readable images left");
    return 0;
}

int nn_item_eval_image(const nn_item *it, nn_image *out, int size) {
    if (it->img.rgb && it->ctx == 1.0f && it->img.w == size && it->img.h == size) {
        if (nn_image_alloc(out, size, size)) return -1;
        memcpy(out->rgb, it->img.rgb, (size_t)size * size * 3);
        return 0;
    }
    nn_image src = {0};
    if (nn_image_load(&src, it->path)) return -1;
    int r;
    if (it->has_box) r = nn_face_crop(out, &src, it->box[0], it->box[1], it->box[2], it->box[3], size);
    else r = nn_image_resize(out, &src, size, size);
    nn_image_free(&src);
    return r;
}

/* ---- split.csv ---- */

static const char *split_names[3] = {"train", "val", "test"};

static void csv_put(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int nn_split_write(const nn_dataset *ds, const char *path) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return nn_set_error("%s: cannot write: out of memory", path);
    fprintf(f, "split,label,source,path,x0,y0,x1,y1\n");
    for (int i = 0; i < ds->n; i++) {
        const nn_item *it = &ds->items[i];
        fprintf(f, "%s,", split_names[it->split]);
        csv_put(f, ds->classes[it->label]);
        fputc(',', f);
        csv_put(f, ds->sources[it->source]);
        fputc(',', f);
        csv_put(f, it->path);
        if (it->has_box)
            fprintf(f, ",%.9g,%.9g,%.9g,%.9g\n", it->box[0], it->box[1], it->box[2], it->box[3]);
        else
            fprintf(f, ",,,,\n");
    }
    fclose(f);
    int r = nn_file_write_atomic(path, buf, len);
    free(buf);
    return r;
}

int nn_split_read(nn_dataset *ds, const char *path, int mask, const char (*classes)[64], int n_classes) {
    memset(ds, 0, sizeof *ds);
    ds->n_classes = n_classes;
    for (int i = 0; i < n_classes; i++) snprintf(ds->classes[i], 64, "%s", classes[i]);
    FILE *f = fopen(path, "r");
    if (!f) return nn_set_error("%s: cannot open: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0, g = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (lineno == 1 && !strncmp(line, "split,", 6)) continue;
        if (line[0] == '\n' || line[0] == 0) continue;
        char *fl[8];
        int n = csv_fields(line, fl, 8);
        int sp = -1;
        for (int k = 0; k < 3; k++)
            if (n >= 1 && !strcmp(fl[0], split_names[k])) sp = k;
        if (n != 8 || sp < 0) {
            fclose(f);
            nn_dataset_free(ds);
            return nn_set_error("%s:%d: expected split,label,source,path,x0,y0,x1,y1", path, lineno);
        }
        if (!(mask & (1 << sp))) continue;
        int c = class_index(ds, fl[1]);
        if (c < 0 && n_classes == 0) {
            /* not used by nnmask itself: classes always come from the model */
        }
        if (c < 0) {
            fclose(f);
            nn_dataset_free(ds);
            return nn_set_error("%s:%d: label '%s' is not a class of the model", path, lineno, fl[1]);
        }
        int s = -1;
        for (int k = 0; k < ds->n_sources; k++)
            if (!strcmp(ds->sources[k], fl[2])) s = k;
        if (s < 0) s = add_source(ds, fl[2]);
        if (s < 0) {
            fclose(f);
            nn_dataset_free(ds);
            return -1;
        }
        nn_item *it = push_item(ds);
        it->path = xstrdup(fl[3]);
        it->label = c;
        it->source = s;
        it->split = sp;
        if (fl[4][0]) {
            it->has_box = 1;
            for (int k = 0; k < 4; k++) it->box[k] = strtof(fl[4 + k], NULL);
        }
        if (it->has_box && ds->n > 1 && ds->items[ds->n - 2].has_box &&
            !strcmp(ds->items[ds->n - 2].path, it->path))
            it->group = ds->items[ds->n - 2].group;
        else
            it->group = g++;
    }
    fclose(f);
    if (ds->n == 0) return nn_set_error("%s: no rows for the requested split", path);
    return 0;
}

int nn_dataset_from_dir(nn_dataset *ds, const char *dir, const char (*classes)[64], int n_classes) {
    memset(ds, 0, sizeof *ds);
    ds->n_classes = n_classes;
    for (int i = 0; i < n_classes; i++) snprintf(ds->classes[i], 64, "%s", classes[i]);
    char nb[1024];
    int s = add_source(ds, base_name(dir, nb, sizeof nb));
    if (s < 0 || scan_class_dirs(ds, dir, s, 0)) return -1;
    for (int i = 0; i < ds->n; i++) {
        ds->items[i].split = NN_SPLIT_TEST;
        ds->items[i].group = i;
    }
    return 0;
}
