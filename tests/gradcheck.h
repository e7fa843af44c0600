/* gradcheck.h — helpers for the layer tests: seeded random fills, a
 * central-difference gradient check (numeric gradient accumulated in double)
 * and dot products. Used by tests/test_layers_*.c only. */
#ifndef NN_GRADCHECK_H
#define NN_GRADCHECK_H
#include "nnmask.h"
#include "testutil.h"

static nn_rng gc_rng;

static inline void gc_fill(float *p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = nn_rng_range(&gc_rng, lo, hi);
}

/* values in [lo,hi] kept at least `gap` away from every kink in kinks[] */
static inline void gc_fill_away(float *p, size_t n, float lo, float hi, const float *kinks,
                                int nk, float gap) {
    for (size_t i = 0; i < n; i++) {
        float v;
        int ok;
        do {
            v = nn_rng_range(&gc_rng, lo, hi);
            ok = 1;
            for (int k = 0; k < nk; k++)
                if (fabsf(v - kinks[k]) < gap) ok = 0;
        } while (!ok);
        p[i] = v;
    }
}

static inline double gc_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*gc_loss_fn)(void *ctx);

/* Compares analytic[i] with (L(p+h) - L(p-h)) / 2h for up to max_checks
 * indices of param (all when n <= max_checks). Passes when
 * |a - num| <= rtol * max(|a|, |num|) + atol, atol = 1e-3 * max|analytic|. */
static inline void gc_check(const char *what, gc_loss_fn loss, void *ctx, float *param,
                            const float *analytic, size_t n, float h, double rtol,
                            int max_checks) {
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(analytic[i]));
    double atol = 1e-3 * fmax(scale, 1e-3);
    size_t step = n <= (size_t)max_checks ? 1 : n / (size_t)max_checks;
    int bad = 0, checked = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i += step) {
        float save = param[i];
        param[i] = save + h;
        double lp = loss(ctx);
        param[i] = save - h;
        double lm = loss(ctx);
        param[i] = save;
        double num = (lp - lm) / (2.0 * (double)h);
        double a = analytic[i];
        double err = fabs(a - num);
        double lim = rtol * fmax(fabs(a), fabs(num)) + atol;
        if (err / lim > worst) worst = err / lim;
        if (!(err <= lim)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.7g numeric %.7g\n", what, i, a, num);
            bad++;
        }
        checked++;
    }
    CHECK(bad == 0 && checked > 0, "%s: %d of %d gradient entries off (worst err/limit %.3g)",
          what, bad, checked, worst);
}
#endif
