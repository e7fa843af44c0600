/* core.c — errors, threads, the seeded random generator, arenas, tensor views
 * and atomic file I/O: the small pieces every other part of nnmask uses. */

#include "nnmask.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- errors ---- */
static _Thread_local char err_buf[1024];

const char *nn_error(void) { return err_buf[0] ? err_buf : "no error"; }

int nn_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

void nn_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nnmask: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- threads ---- */
static int n_threads = 0;

void nn_threads_set(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    n_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    /* One thread pool only: OpenBLAS stays single-threaded and nn__sgemm
     * (layers/conv2d.c) splits large products over the OpenMP team, so idle
     * OpenBLAS threads never spin against OpenMP's on the same cores. */
    openblas_set_num_threads(1);
}

int nn_threads_get(void) {
    if (n_threads <= 0) nn_threads_set(0);
    return n_threads;
}

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nn_rng_u64(nn_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t nn_rng_u32(nn_rng *r) { return (uint32_t)(nn_rng_u64(r) >> 32); }

float nn_rng_uniform(nn_rng *r) { return (float)(nn_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float nn_rng_range(nn_rng *r, float lo, float hi) { return lo + (hi - lo) * nn_rng_uniform(r); }

float nn_rng_normal(nn_rng *r) {
    double u1 = ((nn_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0,1] */
    double u2 = (nn_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

int nn_rng_int(nn_rng *r, int n) {
    if (n <= 1) return 0;
    return (int)((nn_rng_u64(r) >> 33) % (uint64_t)n);
}

void nn_rng_shuffle(nn_rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = nn_rng_int(r, i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- arenas ---- */
int nn_arena_init(nn_arena *a, const char *name, size_t bytes) {
    memset(a, 0, sizeof *a);
    a->name = name;
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    a->base = aligned_alloc(64, bytes);
    if (!a->base) return nn_set_error("out of memory: arena '%s' of %zu bytes", name, bytes);
    a->size = bytes;
    return 0;
}

void *nn_arena_alloc(nn_arena *a, size_t bytes) {
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need > a->size - a->used)
        nn_fatal("arena '%s' exhausted: %zu bytes asked, %zu of %zu free", a->name ? a->name : "?",
                 bytes, a->size - a->used, a->size);
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *nn_arena_floats(nn_arena *a, size_t n) {
    float *p = nn_arena_alloc(a, n * sizeof(float));
    memset(p, 0, n * sizeof(float));
    return p;
}

size_t nn_arena_mark(const nn_arena *a) { return a->used; }

void nn_arena_rewind(nn_arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}

void nn_arena_reset(nn_arena *a) { a->used = 0; }

void nn_arena_free(nn_arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

/* ---- tensors ---- */
nn_tensor nn_tensor_make(float *data, int n, int h, int w, int c) {
    nn_tensor t = {data, n, h, w, c};
    return t;
}

nn_tensor nn_tensor_alloc(nn_arena *a, int n, int h, int w, int c) {
    return nn_tensor_make(nn_arena_floats(a, (size_t)n * h * w * c), n, h, w, c);
}

size_t nn_tensor_numel(const nn_tensor *t) { return (size_t)t->n * t->h * t->w * t->c; }

void nn_tensor_check(const nn_tensor *t, int n, int h, int w, int c, const char *what) {
    if (!t || !t->data) nn_fatal("%s: tensor is NULL", what);
    if ((n >= 0 && t->n != n) || (h >= 0 && t->h != h) || (w >= 0 && t->w != w) ||
        (c >= 0 && t->c != c))
        nn_fatal("%s: expected shape [%d,%d,%d,%d] (-1 = any), got [%d,%d,%d,%d]", what, n, h, w,
                 c, t->n, t->h, t->w, t->c);
}

void nn_tensor_check_same(const nn_tensor *a, const nn_tensor *b, const char *what) {
    if (!a || !b) nn_fatal("%s: tensor is NULL", what);
    nn_tensor_check(b, a->n, a->h, a->w, a->c, what);
}

void nn_tensor_zero(nn_tensor *t) { memset(t->data, 0, nn_tensor_numel(t) * sizeof(float)); }

void nn_tensor_copy(nn_tensor *dst, const nn_tensor *src) {
    nn_tensor_check_same(src, dst, "nn_tensor_copy");
    if (dst->data != src->data) memcpy(dst->data, src->data, nn_tensor_numel(src) * sizeof(float));
}

void nn_tensor_add_inplace(nn_tensor *dst, const nn_tensor *src) {
    nn_tensor_check_same(dst, src, "nn_tensor_add_inplace");
    size_t n = nn_tensor_numel(dst);
    float *d = dst->data;
    const float *s = src->data;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] += s[i];
}

/* ---- files ---- */
int nn_file_open(const char *path, size_t *len, size_t max_bytes) {
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nn_set_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return nn_set_error("%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return nn_set_error("%s: file too large (%lld bytes, limit %zu)", path,
                            (long long)st.st_size, max_bytes);
    }
    *len = (size_t)st.st_size;
    return fd;
}

int nn_file_read(const char *path, uint8_t **data, size_t *len, size_t max_bytes) {
    *data = NULL;
    size_t n;
    int fd = nn_file_open(path, &n, max_bytes);
    *len = 0;
    if (fd < 0) return -1;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return nn_set_error("%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return nn_set_error("%s: read failed: %s", path, r < 0 ? strerror(errno) : "short read");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = n;
    return 0;
}

int nn_file_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return nn_set_error("%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return nn_set_error("%s: cannot create: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return nn_set_error("%s: write failed: %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return nn_set_error("%s: write failed: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return nn_set_error("%s: rename failed: %s", path, strerror(e));
    }
    return 0;
}

int nn_mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return nn_set_error("bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return nn_set_error("%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return nn_set_error("%s: not a directory", path);
    return 0;
}
