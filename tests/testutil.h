/* testutil.h — the few macros every nnmask test uses: CHECK, CHECK_CLOSE,
 * max-relative-error comparison with the first mismatches printed, and a
 * summary line. A test executable returns test_summary() from main. */
#ifndef NN_TESTUTIL_H
#define NN_TESTUTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_pass, tu_fail;
/* Exit code 77 tells meson the test was skipped. */
#define TEST_SKIP_CODE 77

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            tu_pass++;                                                     \
        } else {                                                           \
            tu_fail++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

#define CHECK_CLOSE(a, b, tol, what)                                          \
    do {                                                                      \
        double _a = (a), _b = (b);                                            \
        CHECK(fabs(_a - _b) <= (tol) * fmax(1.0, fmax(fabs(_a), fabs(_b))), \
              "%s: %.8g vs %.8g", what, _a, _b);                              \
    } while (0)

/* Max error |a-b| / max(|b|, floor) over n values; prints the first 5
 * mismatches beyond tol. Returns the max error. */
static inline double tu_compare(const char *what, const float *a, const float *ref, size_t n,
                                double floor_, double tol) {
    double maxerr = 0;
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        double e = d / fmax(fabs((double)ref[i]), floor_);
        if (!(e <= tol) && shown < 5) {
            fprintf(stderr, "  %s[%zu]: got %.8g want %.8g (err %.3g)\n", what, i, a[i], ref[i], e);
            shown++;
        }
        if (!(e <= maxerr)) maxerr = e; /* NaN-safe: NaN becomes the max */
    }
    return maxerr;
}

#define CHECK_ARRAY(what, a, ref, n, floor_, tol)                                         \
    do {                                                                                  \
        double _e = tu_compare(what, a, ref, n, floor_, tol);                             \
        CHECK(_e <= (tol), "%s: max error %.3g > %.3g", what, _e, (double)(tol));         \
    } while (0)

static inline int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tu_pass, tu_fail);
    return tu_fail ? 1 : 0;
}

/* The shared data folder (../shared from the source root, or $NNMASK_SHARED). */
static inline const char *tu_shared(void) {
    const char *s = getenv("NNMASK_SHARED");
    return s ? s : "../shared";
}
#endif
