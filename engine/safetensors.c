/* safetensors.c — reading (bounds-checked, F32/F16/BF16 -> f32, NaN/Inf refused) and
 * atomic writing of safetensors files: 8-byte LE header length, JSON header, byte buffer. */

#include "nnmask.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20)    /* JSON header limit (100 MB) */
#define ST_MAX_FILE ((size_t)2 << 30)           /* whole-file limit (2 GB) */
#define ST_MAX_INDEX 9007199254740992.0         /* 2^53: JSON integers stay exact */

typedef struct {
    char *name;
    char dtype[12];
    int ndim;
    int64_t shape[NN_ST_MAX_DIMS];
    size_t begin, end; /* byte offsets into the data buffer */
} st_entry;

struct nn_st {
    char *fname;
    uint8_t *buf; /* the whole file (memory), or its first 8 + header bytes (fd >= 0) */
    size_t len;   /* the file's length */
    int fd;       /* a file: tensors are read from it on demand (pread), so loading
                     holds the header, not a second copy of the weights; -1 = memory */
    const uint8_t *data; /* byte buffer after the header (memory only) */
    size_t data_len;
    st_entry *t;
    int n;
    char **meta_k, **meta_v; /* in file order */
    int *meta_order;         /* indices sorted by key */
    int n_meta;
};

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* qsort_r comparator: meta indices by key */
static int meta_cmp(const void *a, const void *b, void *ctx) {
    char **k = ctx;
    return strcmp(k[*(const int *)a], k[*(const int *)b]);
}

static const struct {
    const char *name;
    int size;
} st_dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
    {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1},
    {"F8_E5M2", 1},
};

static int dtype_size(const char *d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(st_dtypes[i].name, d)) return st_dtypes[i].size;
    return 0;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void nn_st_close(nn_st *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_k[i]);
        free(st->meta_v[i]);
    }
    free(st->t);
    free(st->meta_k);
    free(st->meta_v);
    free(st->meta_order);
    free(st->buf);
    free(st->fname);
    if (st->fd >= 0) close(st->fd);
    free(st);
}

/* A JSON number that is a non-negative integer <= 2^53. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_INDEX) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int parse_entry(nn_st *st, st_entry *e, const cJSON *item) {
    const char *f = st->fname, *nm = item->string;
    if (!cJSON_IsObject(item)) return nn_set_error("%s: tensor '%s': entry is not an object", f, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return nn_set_error("%s: tensor '%s': needs \"dtype\" (string), \"shape\" and "
                            "\"data_offsets\" (arrays)", f, nm);
    int esize = dtype_size(dt->valuestring);
    if (!esize) return nn_set_error("%s: tensor '%s': unknown dtype '%.20s'", f, nm, dt->valuestring);
    snprintf(e->dtype, sizeof e->dtype, "%s", dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > NN_ST_MAX_DIMS)
        return nn_set_error("%s: tensor '%s': %d dimensions (at most %d)", f, nm, nd, NN_ST_MAX_DIMS);
    e->ndim = nd;
    uint64_t numel = 1;
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, sh) {
        uint64_t d;
        if (!json_uint(v, &d))
            return nn_set_error("%s: tensor '%s': shape[%d] is not a non-negative integer", f, nm, k);
        if (d > INT64_MAX / 2) return nn_set_error("%s: tensor '%s': shape[%d] too large", f, nm, k);
        e->shape[k++] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d)
            return nn_set_error("%s: tensor '%s': shape product overflows", f, nm);
        numel *= d;
    }
    if (numel > UINT64_MAX / (uint64_t)esize)
        return nn_set_error("%s: tensor '%s': byte size overflows", f, nm);
    uint64_t nbytes = numel * (uint64_t)esize;
    uint64_t b, en;
    if (cJSON_GetArraySize(off) != 2 || !json_uint(cJSON_GetArrayItem(off, 0), &b) ||
        !json_uint(cJSON_GetArrayItem(off, 1), &en))
        return nn_set_error("%s: tensor '%s': data_offsets must be two non-negative integers", f, nm);
    if (b > en)
        return nn_set_error("%s: tensor '%s': data_offsets begin %llu > end %llu", f, nm,
                            (unsigned long long)b, (unsigned long long)en);
    if (en > st->data_len)
        return nn_set_error("%s: tensor '%s': data_offsets [%llu, %llu] past the end of the "
                            "data (%zu bytes; file truncated?)", f, nm, (unsigned long long)b,
                            (unsigned long long)en, st->data_len);
    if (en - b != nbytes)
        return nn_set_error("%s: tensor '%s': shape and dtype %s give %llu bytes, data_offsets "
                            "give %llu", f, nm, e->dtype, (unsigned long long)nbytes,
                            (unsigned long long)(en - b));
    e->begin = (size_t)b;
    e->end = (size_t)en;
    e->name = xstrdup(nm);
    if (!e->name) return nn_set_error("%s: out of memory", f);
    return 0;
}

static int parse_meta(nn_st *st, const cJSON *meta) {
    if (cJSON_IsNull(meta)) return 0;
    if (!cJSON_IsObject(meta)) return nn_set_error("%s: __metadata__ is not an object", st->fname);
    int n = cJSON_GetArraySize(meta);
    st->meta_k = calloc((size_t)n + 1, sizeof(char *));
    st->meta_v = calloc((size_t)n + 1, sizeof(char *));
    st->meta_order = calloc((size_t)n + 1, sizeof(int));
    if (!st->meta_k || !st->meta_v || !st->meta_order) return nn_set_error("%s: out of memory", st->fname);
    const cJSON *v;
    cJSON_ArrayForEach(v, meta) {
        if (!cJSON_IsString(v))
            return nn_set_error("%s: __metadata__ value of '%s' is not a string", st->fname,
                                v->string);
        st->meta_k[st->n_meta] = xstrdup(v->string);
        st->meta_v[st->n_meta] = xstrdup(v->valuestring);
        st->n_meta++;
        if (!st->meta_k[st->n_meta - 1] || !st->meta_v[st->n_meta - 1])
            return nn_set_error("%s: out of memory", st->fname);
    }
    return 0;
}

static int st_parse(nn_st *st) {
    const char *f = st->fname;
    if (st->len < 8)
        return nn_set_error("%s: too short for a safetensors file (%zu bytes)", f, st->len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | st->buf[i];
    if (hl > ST_MAX_HEADER)
        return nn_set_error("%s: header length %llu exceeds the limit of %llu bytes (not a "
                            "safetensors file?)", f, (unsigned long long)hl,
                            (unsigned long long)ST_MAX_HEADER);
    if (hl > st->len - 8)
        return nn_set_error("%s: header length %llu runs past the end of the file (%zu bytes; "
                            "truncated?)", f, (unsigned long long)hl, st->len);
    if (hl < 2 || st->buf[8] != '{')
        return nn_set_error("%s: header is not a JSON object", f);
    const char *hdr = (const char *)st->buf + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hl, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        uintptr_t ep = (uintptr_t)cJSON_GetErrorPtr(), h0 = (uintptr_t)hdr;
        size_t at = !root && ep >= h0 && ep <= h0 + hl ? (size_t)(ep - h0) : 0;
        cJSON_Delete(root);
        return nn_set_error("%s: header is not valid JSON (near byte %zu of %llu)", f, at,
                            (unsigned long long)hl);
    }
    for (const char *p = end; p && p < hdr + hl; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(root);
            return nn_set_error("%s: junk after the JSON header at byte %zu", f,
                                (size_t)(p - hdr));
        }
    st->data = st->buf + 8 + hl;
    st->data_len = st->len - 8 - (size_t)hl;
    int n = cJSON_GetArraySize(root);
    st->t = calloc((size_t)n + 1, sizeof *st->t);
    if (!st->t) {
        cJSON_Delete(root);
        return nn_set_error("%s: out of memory", f);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (!strcmp(item->string, "__metadata__")) {
            if (st->meta_k) {
                cJSON_Delete(root);
                return nn_set_error("%s: __metadata__ appears twice", f);
            }
            if (parse_meta(st, item)) {
                cJSON_Delete(root);
                return -1;
            }
            continue;
        }
        if (parse_entry(st, &st->t[st->n], item)) {
            cJSON_Delete(root);
            return -1;
        }
        st->n++;
    }
    cJSON_Delete(root);
    /* Sort by name (nn_st_find is a binary search) and refuse duplicates. */
    if (st->n > 1) qsort(st->t, (size_t)st->n, sizeof *st->t, entry_cmp);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(st->t[i - 1].name, st->t[i].name))
            return nn_set_error("%s: tensor '%s' appears twice", f, st->t[i].name);
    for (int i = 0; i < st->n_meta; i++) st->meta_order[i] = i;
    if (st->n_meta > 1) qsort_r(st->meta_order, (size_t)st->n_meta, sizeof(int), meta_cmp, st->meta_k);
    for (int i = 1; i < st->n_meta; i++)
        if (!strcmp(st->meta_k[st->meta_order[i - 1]], st->meta_k[st->meta_order[i]]))
            return nn_set_error("%s: __metadata__ key '%s' appears twice", f,
                                st->meta_k[st->meta_order[i]]);
    return 0;
}

/* Takes ownership of buf (malloc'd) and fd (>= 0: a file of len bytes whose
 * first bytes buf holds: 8, or 8 + its header length when that fits). */
static nn_st *st_open_owned(uint8_t *buf, size_t len, const char *name, int fd) {
    nn_st *st = calloc(1, sizeof *st);
    if (!st) {
        free(buf);
        if (fd >= 0) close(fd);
        nn_set_error("%s: out of memory", name);
        return NULL;
    }
    st->buf = buf;
    st->len = len;
    st->fd = fd;
    st->fname = xstrdup(name);
    if (!st->fname) {
        nn_st_close(st);
        nn_set_error("%s: out of memory", name);
        return NULL;
    }
    if (st_parse(st)) {
        nn_st_close(st);
        return NULL;
    }
    return st;
}

/* Reads exactly n bytes at off; -1 + error on a short file. */
static int read_at(int fd, void *dst, size_t n, uint64_t off, const char *name) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)dst + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return nn_set_error("%s: read failed: %s", name,
                                r < 0 ? strerror(errno) : "file shorter than when it was opened");
        got += (size_t)r;
    }
    return 0;
}

nn_st *nn_st_open(const char *path) {
    size_t len;
    int fd = nn_file_open(path, &len, ST_MAX_FILE);
    if (fd < 0) return NULL;
    size_t head = len < 8 ? len : 8;
    uint8_t *buf = malloc(8);
    if (!buf || read_at(fd, buf, head, 0, path)) {
        free(buf);
        close(fd);
        if (!buf) nn_set_error("%s: out of memory", path);
        return NULL;
    }
    if (len >= 8) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = (hl << 8) | buf[i];
        /* a header that fits is read whole; st_parse reports one that does not */
        if (hl <= ST_MAX_HEADER && hl <= len - 8) {
            uint8_t *b2 = realloc(buf, 8 + (size_t)hl + 1);
            if (!b2 || read_at(fd, b2 + 8, (size_t)hl, 8, path)) {
                free(b2 ? b2 : buf);
                close(fd);
                if (!b2) nn_set_error("%s: out of memory for a %llu-byte header", path, (unsigned long long)hl);
                return NULL;
            }
            buf = b2;
        }
    }
    return st_open_owned(buf, len, path, fd);
}

nn_st *nn_st_open_memory(const uint8_t *buf, size_t len, const char *name) {
    if (!name) name = "<memory>";
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        nn_set_error("%s: out of memory (%zu bytes)", name, len);
        return NULL;
    }
    if (len) memcpy(copy, buf, len);
    return st_open_owned(copy, len, name, -1);
}

int nn_st_count(const nn_st *st) { return st->n; }

const char *nn_st_name(const nn_st *st, int i) {
    return i >= 0 && i < st->n ? st->t[i].name : NULL;
}

int nn_st_find(const nn_st *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->t[mid].name, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int nn_st_info(const nn_st *st, int i, const char **dtype, int *ndim, int64_t *shape) {
    if (i < 0 || i >= st->n)
        return nn_set_error("%s: tensor index %d out of range (%d tensors)", st->fname, i, st->n);
    const st_entry *e = &st->t[i];
    if (dtype) *dtype = e->dtype;
    if (ndim) *ndim = e->ndim;
    if (shape)
        for (int k = 0; k < e->ndim; k++) shape[k] = e->shape[k];
    return 0;
}

const char *nn_st_meta(const nn_st *st, const char *key) {
    int lo = 0, hi = st->n_meta - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->meta_k[st->meta_order[mid]], key);
        if (c == 0) return st->meta_v[st->meta_order[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int nn_st_meta_count(const nn_st *st) { return st->n_meta; }

const char *nn_st_meta_key(const nn_st *st, int i) {
    return i >= 0 && i < st->n_meta ? st->meta_k[i] : NULL;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int k = 0; k < ndim && o < cap; k++)
        o += (size_t)snprintf(buf + o, cap - o, k ? ",%lld" : "%lld", (long long)shape[k]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* IEEE half -> float, including subnormals, Inf and NaN. */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (ex == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (ex == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float v = (float)man * (1.0f / 16777216.0f);
            return sign ? -v : v;
        }
    } else {
        bits = sign | ((ex + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int nn_st_read_f32(const nn_st *st, const char *name, float *dst, int ndim,
                   const int64_t *shape) {
    int i = nn_st_find(st, name);
    if (i < 0) return nn_set_error("%s: tensor '%s' not found", st->fname, name);
    const st_entry *e = &st->t[i];
    int same = e->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = e->shape[k] == shape[k];
    if (!same) {
        char got[256], want[256];
        shape_str(got, sizeof got, e->ndim, e->shape);
        shape_str(want, sizeof want, ndim, shape);
        return nn_set_error("%s: tensor '%s': shape %s, expected %s", st->fname, name, got, want);
    }
    size_t n = 0, bytes = e->end - e->begin;
    uint64_t at = (uint64_t)(st->len - st->data_len) + e->begin; /* file offset */
    const uint8_t *src = st->fd < 0 ? st->data + e->begin : NULL;
    uint8_t *tmp = NULL;
    if (!strcmp(e->dtype, "F32")) {
        n = bytes / 4;
        if (src) memcpy(dst, src, n * 4);
        else if (read_at(st->fd, dst, n * 4, at, st->fname)) return -1;
    } else if (!strcmp(e->dtype, "F16") || !strcmp(e->dtype, "BF16")) {
        int bf = e->dtype[0] == 'B';
        n = bytes / 2;
        if (!src) {
            tmp = malloc(bytes ? bytes : 1);
            if (!tmp) return nn_set_error("%s: out of memory reading tensor '%s'", st->fname, name);
            if (read_at(st->fd, tmp, bytes, at, st->fname)) {
                free(tmp);
                return -1;
            }
            src = tmp;
        }
        for (size_t j = 0; j < n; j++) {
            uint16_t h = (uint16_t)(src[2 * j] | (src[2 * j + 1] << 8));
            if (bf) {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[j], &bits, 4);
            } else {
                dst[j] = f16_to_f32(h);
            }
        }
        free(tmp);
    } else {
        return nn_set_error("%s: tensor '%s': dtype %s, expected F32 (or F16/BF16)", st->fname,
                            name, e->dtype);
    }
    for (size_t j = 0; j < n; j++)
        if (!isfinite(dst[j]))
            return nn_set_error("%s: tensor '%s' holds %s at index %zu", st->fname, name,
                                isnan(dst[j]) ? "NaN" : "Inf", j);
    return 0;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    const float *data;
    int ndim;
    int64_t shape[NN_ST_MAX_DIMS];
    size_t bytes;
} st_wentry;

struct nn_st_writer {
    st_wentry *t;
    int n, cap;
    char **mk, **mv;
    int n_meta, cap_meta;
    int failed; /* an add failed: save refuses to write a partial file */
};

nn_st_writer *nn_st_writer_new(void) { return calloc(1, sizeof(nn_st_writer)); }

void nn_st_writer_free(nn_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

int nn_st_writer_meta(nn_st_writer *w, const char *key, const char *value) {
    if (!key || !value || !*key) {
        w->failed = 1;
        return nn_set_error("safetensors writer: empty metadata key or value");
    }
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->mk[i], key)) { /* replace */
            char *v = xstrdup(value);
            if (!v) return nn_set_error("safetensors writer: out of memory");
            free(w->mv[i]);
            w->mv[i] = v;
            return 0;
        }
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 8;
        char **k = realloc(w->mk, (size_t)cap * sizeof *k);
        if (k) w->mk = k;
        char **v = realloc(w->mv, (size_t)cap * sizeof *v);
        if (v) w->mv = v;
        if (!k || !v) {
            w->failed = 1;
            return nn_set_error("safetensors writer: out of memory");
        }
        w->cap_meta = cap;
    }
    w->mk[w->n_meta] = xstrdup(key);
    w->mv[w->n_meta] = xstrdup(value);
    w->n_meta++;
    if (!w->mk[w->n_meta - 1] || !w->mv[w->n_meta - 1]) {
        w->failed = 1;
        return nn_set_error("safetensors writer: out of memory");
    }
    return 0;
}

int nn_st_writer_add_f32(nn_st_writer *w, const char *name, const float *data, int ndim,
                         const int64_t *shape) {
    if (!name || !*name || !strcmp(name, "__metadata__")) {
        w->failed = 1;
        return nn_set_error("safetensors writer: bad tensor name '%s'", name ? name : "(null)");
    }
    if (ndim < 0 || ndim > NN_ST_MAX_DIMS) {
        w->failed = 1;
        return nn_set_error("safetensors writer: tensor '%s': %d dimensions", name, ndim);
    }
    uint64_t numel = 1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0 || (shape[k] > 0 && numel > (UINT64_MAX / 4) / (uint64_t)shape[k])) {
            w->failed = 1;
            return nn_set_error("safetensors writer: tensor '%s': bad shape", name);
        }
        numel *= (uint64_t)shape[k];
    }
    if (numel > 0 && !data) {
        w->failed = 1;
        return nn_set_error("safetensors writer: tensor '%s': no data", name);
    }
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) {
            w->failed = 1;
            return nn_set_error("safetensors writer: tensor '%s' added twice", name);
        }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        st_wentry *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) {
            w->failed = 1;
            return nn_set_error("safetensors writer: out of memory");
        }
        w->t = t;
        w->cap = cap;
    }
    st_wentry *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    if (!e->name) {
        w->failed = 1;
        return nn_set_error("safetensors writer: out of memory");
    }
    e->data = data;
    e->ndim = ndim;
    for (int k = 0; k < ndim; k++) e->shape[k] = shape[k];
    e->bytes = (size_t)numel * 4;
    w->n++;
    return 0;
}

/* growable string for the JSON header */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

int nn_st_writer_save(nn_st_writer *w, const char *path) {
    if (w->failed)
        return nn_set_error("%s: not written: an earlier tensor or metadata entry failed", path);
    sbuf h = {0};
    char num[64];
    sb_str(&h, "{");
    if (w->n_meta) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, w->mk[i]);
            sb_str(&h, ":");
            sb_json_string(&h, w->mv[i]);
        }
        sb_str(&h, "}");
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_wentry *e = &w->t[i];
        if (i || w->n_meta) sb_str(&h, ",");
        sb_json_string(&h, e->name);
        sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < e->ndim; k++) {
            snprintf(num, sizeof num, k ? ",%lld" : "%lld", (long long)e->shape[k]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + e->bytes);
        sb_str(&h, num);
        off += e->bytes;
    }
    sb_str(&h, "}");
    while (!h.oom && h.len % 8) sb_str(&h, " "); /* the data buffer starts 8-aligned */
    if (h.oom) {
        free(h.s);
        return nn_set_error("%s: out of memory building the header", path);
    }
    size_t total = 8 + h.len + off;
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(h.s);
        return nn_set_error("%s: out of memory (%zu bytes)", path, total);
    }
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
    memcpy(buf + 8, h.s, h.len);
    free(h.s);
    uint8_t *p = buf + 8 + hl;
    for (int i = 0; i < w->n; i++) {
        if (w->t[i].bytes) memcpy(p, w->t[i].data, w->t[i].bytes);
        p += w->t[i].bytes;
    }
    int r = nn_file_write_atomic(path, buf, total);
    free(buf);
    return r;
}
