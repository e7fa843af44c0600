/* plot.c — PNG figures with cairo: loss/accuracy curves, annotated confusion
 * matrix, ROC curves with AUC, image grids; axes with ticks, labels, legends. */

#include "plot.h"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT "DejaVu Sans"

typedef struct {
    unsigned char *data;
    size_t len, cap;
} png_buf;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length) {
    png_buf *b = closure;
    if (b->len + length > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 65536);
        while (cap < b->len + length) cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p) return CAIRO_STATUS_NO_MEMORY;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    return CAIRO_STATUS_SUCCESS;
}

static int save_png(cairo_surface_t *s, const char *path) {
    png_buf b = {0};
    cairo_surface_flush(s);
    cairo_status_t st = cairo_surface_write_to_png_stream(s, png_write, &b);
    if (st != CAIRO_STATUS_SUCCESS) {
        free(b.data);
        return nn_set_error("%s: cannot encode PNG: %s", path, cairo_status_to_string(st));
    }
    int r = nn_file_write_atomic(path, b.data, b.len);
    free(b.data);
    return r;
}

/* cairo's toy text API fills cairo and fontconfig caches that live until
 * exit; freeing them then keeps leak checkers (ASan) quiet. */
static void release_font_caches(void) {
    cairo_debug_reset_static_data();
    FcFini();
}

static void set_font(cairo_t *cr, double size, int bold) {
    static int registered;
    if (!__atomic_exchange_n(&registered, 1, __ATOMIC_SEQ_CST)) atexit(release_font_caches);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* Text anchored at (x, y): ax/ay 0 = left/top, 0.5 = centre, 1 = right/bottom. */
static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &e);
    cairo_font_extents(cr, &fe);
    double h = fe.ascent - fe.descent * 0.2;
    /* baseline = y + h*(1-ay) */
    cairo_move_to(cr, x - ax * e.x_advance, y + h * (1 - ay));
    cairo_show_text(cr, s);
}

static void text_rot(cairo_t *cr, double x, double y, const char *s) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, s, 0.5, 0.5);
    cairo_restore(cr);
}

static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

static void fmt_tick(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(buf, n, "%.*f", dec, v);
}

typedef struct {
    double x0, y0, w, h;           /* plot area in pixels */
    double xmin, xmax, ymin, ymax; /* data range */
} axes;

static double ax_x(const axes *a, double v) { return a->x0 + (v - a->xmin) / (a->xmax - a->xmin) * a->w; }
static double ax_y(const axes *a, double v) { return a->y0 + a->h - (v - a->ymin) / (a->ymax - a->ymin) * a->h; }

/* Frame, grid, ticks, tick labels, axis labels and the title. */
static void draw_axes(cairo_t *cr, const axes *a, const char *xlabel, const char *ylabel,
                      const char *title, int integer_x) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, a->x0, a->y0, a->w, a->h);
    cairo_fill(cr);
    set_font(cr, 13, 0);
    char buf[32];
    /* x ticks */
    double xs = nice_step(a->xmax - a->xmin, 8);
    if (integer_x && xs < 1) xs = 1;
    for (double v = ceil(a->xmin / xs) * xs; v <= a->xmax + xs * 1e-6; v += xs) {
        double x = ax_x(a, v);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, x, a->y0);
        cairo_line_to(cr, x, a->y0 + a->h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_move_to(cr, x, a->y0 + a->h);
        cairo_line_to(cr, x, a->y0 + a->h + 5);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, xs);
        text_at(cr, x, a->y0 + a->h + 8, buf, 0.5, 0);
    }
    double ys = nice_step(a->ymax - a->ymin, 6);
    for (double v = ceil(a->ymin / ys) * ys; v <= a->ymax + ys * 1e-6; v += ys) {
        double y = ax_y(a, v);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, a->x0, y);
        cairo_line_to(cr, a->x0 + a->w, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_move_to(cr, a->x0 - 5, y);
        cairo_line_to(cr, a->x0, y);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, ys);
        text_at(cr, a->x0 - 8, y, buf, 1, 0.5);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, a->x0, a->y0, a->w, a->h);
    cairo_stroke(cr);
    set_font(cr, 14, 0);
    text_at(cr, a->x0 + a->w / 2, a->y0 + a->h + 30, xlabel, 0.5, 0);
    text_rot(cr, a->x0 - 58, a->y0 + a->h / 2, ylabel);
    set_font(cr, 16, 1);
    text_at(cr, a->x0 + a->w / 2, a->y0 - 12, title, 0.5, 1);
}

static void draw_series(cairo_t *cr, const axes *a, const double *x, const float *y, int n,
                        double r, double g, double b, int dashed, int markers) {
    cairo_save(cr);
    cairo_rectangle(cr, a->x0, a->y0, a->w, a->h);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, r, g, b);
    cairo_set_line_width(cr, 2.2);
    if (dashed) {
        double d[2] = {7, 4};
        cairo_set_dash(cr, d, 2, 0);
    }
    int pen = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(y[i])) {
            pen = 0;
            continue;
        }
        if (!pen) cairo_move_to(cr, ax_x(a, x[i]), ax_y(a, y[i]));
        else cairo_line_to(cr, ax_x(a, x[i]), ax_y(a, y[i]));
        pen = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    if (markers)
        for (int i = 0; i < n; i++) {
            if (isnan(y[i])) continue;
            cairo_arc(cr, ax_x(a, x[i]), ax_y(a, y[i]), 3.2, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    cairo_restore(cr);
}

typedef struct {
    const char *label;
    double r, g, b;
    int dashed;
} legend_entry;

/* Legend box in a corner: corner 0 top-right, 1 bottom-right. */
static void draw_legend(cairo_t *cr, const axes *a, const legend_entry *e, int n, int corner) {
    set_font(cr, 13, 0);
    double wmax = 0;
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t t;
        cairo_text_extents(cr, e[i].label, &t);
        if (t.x_advance > wmax) wmax = t.x_advance;
    }
    double bw = wmax + 56, bh = n * 20 + 10;
    double bx = a->x0 + a->w - bw - 10;
    double by = corner == 0 ? a->y0 + 10 : a->y0 + a->h - bh - 10;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double y = by + 15 + i * 20;
        cairo_set_source_rgb(cr, e[i].r, e[i].g, e[i].b);
        cairo_set_line_width(cr, 2.2);
        if (e[i].dashed) {
            double d[2] = {7, 4};
            cairo_set_dash(cr, d, 2, 0);
        }
        cairo_move_to(cr, bx + 8, y);
        cairo_line_to(cr, bx + 40, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, bx + 48, y, e[i].label, 0, 0.5);
    }
}

static cairo_t *new_canvas(cairo_surface_t **s, int w, int h) {
    *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(*s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    return cr;
}

static int finish(cairo_surface_t *s, cairo_t *cr, const char *path) {
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    int r = st == CAIRO_STATUS_SUCCESS ? save_png(s, path)
                                       : nn_set_error("%s: drawing failed: %s", path, cairo_status_to_string(st));
    cairo_surface_destroy(s);
    return r;
}

static void range_of(const float *a, const float *b, int n, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (a && !isnan(a[i])) {
            *lo = fmin(*lo, a[i]);
            *hi = fmax(*hi, a[i]);
        }
        if (b && !isnan(b[i])) {
            *lo = fmin(*lo, b[i]);
            *hi = fmax(*hi, b[i]);
        }
    }
    if (!isfinite(*lo)) {
        *lo = 0;
        *hi = 1;
    }
    if (*hi - *lo < 1e-6) {
        *lo -= 0.05;
        *hi += 0.05;
    }
}

int nn_plot_curves(const char *path, int epochs, const float *train_loss, const float *val_loss,
                   const float *train_acc, const float *val_acc, const char *title) {
    int W = 1300, H = 560;
    cairo_surface_t *s;
    cairo_t *cr = new_canvas(&s, W, H);
    double *x = malloc(((size_t)epochs + 1) * sizeof *x);
    if (!x) nn_fatal("out of memory");
    for (int i = 0; i < epochs; i++) x[i] = i + 1;
    double lo, hi;
    const double cb[3] = {0.12, 0.40, 0.75}, co[3] = {0.90, 0.40, 0.05};
    /* loss */
    range_of(train_loss, val_loss, epochs, &lo, &hi);
    double pad = (hi - lo) * 0.08;
    axes a = {90, 70, 500, 400, 1, epochs > 1 ? epochs : 2, fmax(0, lo - pad), hi + pad};
    draw_axes(cr, &a, "epoch", "loss (cross-entropy)", "Loss", 1);
    draw_series(cr, &a, x, train_loss, epochs, cb[0], cb[1], cb[2], 0, epochs <= 60);
    draw_series(cr, &a, x, val_loss, epochs, co[0], co[1], co[2], 1, epochs <= 60);
    legend_entry le[2] = {{"train", cb[0], cb[1], cb[2], 0}, {"validation", co[0], co[1], co[2], 1}};
    draw_legend(cr, &a, le, 2, 0);
    /* accuracy */
    range_of(train_acc, val_acc, epochs, &lo, &hi);
    pad = (hi - lo) * 0.08;
    axes b = {740, 70, 500, 400, 1, epochs > 1 ? epochs : 2, lo - pad, fmin(1.0, hi + pad) + (hi + pad > 1 ? 0.005 : 0)};
    draw_axes(cr, &b, "epoch", "accuracy", "Accuracy", 1);
    draw_series(cr, &b, x, train_acc, epochs, cb[0], cb[1], cb[2], 0, epochs <= 60);
    draw_series(cr, &b, x, val_acc, epochs, co[0], co[1], co[2], 1, epochs <= 60);
    draw_legend(cr, &b, le, 2, 1);
    free(x);
    set_font(cr, 18, 1);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, W / 2.0, 14, title ? title : "Training curves", 0.5, 0);
    return finish(s, cr, path);
}

int nn_plot_confusion(const char *path, const nn_metrics *m, const char (*classes)[64],
                      const char *title) {
    int k = m->k;
    int cell = k <= 3 ? 150 : 100;
    int left = 190, top = 90;
    int W = left + k * cell + 150, H = top + k * cell + 110;
    cairo_surface_t *s;
    cairo_t *cr = new_canvas(&s, W, H);
    int maxv = 1;
    for (int r = 0; r < k; r++)
        for (int c = 0; c < k; c++)
            if (m->confusion[r][c] > maxv) maxv = m->confusion[r][c];
    for (int r = 0; r < k; r++) {
        int row_sum = 0;
        for (int c = 0; c < k; c++) row_sum += m->confusion[r][c];
        for (int c = 0; c < k; c++) {
            int v = m->confusion[r][c];
            double f = (double)v / maxv;
            /* white -> dark blue */
            double cr_ = 1 - 0.85 * f, cg = 1 - 0.65 * f, cbl = 1 - 0.25 * f;
            cairo_set_source_rgb(cr, cr_, cg, cbl);
            cairo_rectangle(cr, left + c * cell, top + r * cell, cell, cell);
            cairo_fill(cr);
            double lum = 0.3 * cr_ + 0.59 * cg + 0.11 * cbl;
            if (lum < 0.55) cairo_set_source_rgb(cr, 1, 1, 1);
            else cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
            char buf[64];
            set_font(cr, 26, 1);
            snprintf(buf, sizeof buf, "%d", v);
            text_at(cr, left + c * cell + cell / 2.0, top + r * cell + cell / 2.0 - 10, buf, 0.5, 0.5);
            set_font(cr, 14, 0);
            snprintf(buf, sizeof buf, "%.1f%%", row_sum ? 100.0 * v / row_sum : 0.0);
            text_at(cr, left + c * cell + cell / 2.0, top + r * cell + cell / 2.0 + 20, buf, 0.5, 0.5);
        }
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    for (int i = 0; i <= k; i++) {
        cairo_move_to(cr, left, top + i * cell);
        cairo_line_to(cr, left + k * cell, top + i * cell);
        cairo_move_to(cr, left + i * cell, top);
        cairo_line_to(cr, left + i * cell, top + k * cell);
    }
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    set_font(cr, 14, 0);
    for (int i = 0; i < k; i++) {
        text_at(cr, left - 10, top + i * cell + cell / 2.0, classes[i], 1, 0.5);
        text_at(cr, left + i * cell + cell / 2.0, top + k * cell + 10, classes[i], 0.5, 0);
    }
    set_font(cr, 15, 1);
    text_at(cr, left + k * cell / 2.0, top + k * cell + 40, "predicted label", 0.5, 0);
    text_rot(cr, 24, top + k * cell / 2.0, "true label");
    set_font(cr, 17, 1);
    text_at(cr, W / 2.0, 18, title ? title : "Confusion matrix", 0.5, 0);
    set_font(cr, 13, 0);
    char sub[160];
    snprintf(sub, sizeof sub, "n = %d, accuracy %.2f%%%s", m->n, 100 * m->accuracy, "");
    if (k == 2) {
        size_t l = strlen(sub);
        snprintf(sub + l, sizeof sub - l, ", threshold %.3f", m->threshold);
    }
    text_at(cr, W / 2.0, 48, sub, 0.5, 0);
    /* colour bar */
    double bx = left + k * cell + 40, by = top, bh = k * cell;
    for (int i = 0; i < (int)bh; i++) {
        double f = 1 - i / bh;
        cairo_set_source_rgb(cr, 1 - 0.85 * f, 1 - 0.65 * f, 1 - 0.25 * f);
        cairo_rectangle(cr, bx, by + i, 20, 1.5);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, bx, by, 20, bh);
    cairo_stroke(cr);
    set_font(cr, 12, 0);
    char buf[32];
    snprintf(buf, sizeof buf, "%d", maxv);
    text_at(cr, bx + 26, by, buf, 0, 0.5);
    text_at(cr, bx + 26, by + bh, "0", 0, 0.5);
    return finish(s, cr, path);
}

int nn_plot_roc(const char *path, const nn_metrics *m, const char (*classes)[64], const char *title) {
    int W = 700, H = 640;
    cairo_surface_t *s;
    cairo_t *cr = new_canvas(&s, W, H);
    axes a = {90, 70, 560, 480, 0, 1, 0, 1.0};
    draw_axes(cr, &a, "false positive rate", "true positive rate", title ? title : "ROC curve", 0);
    /* chance diagonal */
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    double d[2] = {4, 4};
    cairo_set_dash(cr, d, 2, 0);
    cairo_set_line_width(cr, 1.2);
    cairo_move_to(cr, ax_x(&a, 0), ax_y(&a, 0));
    cairo_line_to(cr, ax_x(&a, 1), ax_y(&a, 1));
    cairo_stroke(cr);
    cairo_restore(cr);
    static const double pal[8][3] = {{0.12, 0.40, 0.75}, {0.90, 0.40, 0.05}, {0.15, 0.60, 0.20},
                                     {0.80, 0.10, 0.15}, {0.55, 0.35, 0.70}, {0.50, 0.30, 0.25},
                                     {0.90, 0.45, 0.75}, {0.45, 0.45, 0.45}};
    legend_entry le[NN_CFG_MAX_CLASSES + 1];
    char labels[NN_CFG_MAX_CLASSES][160];
    int nl = 0;
    for (int c = 0; c < m->n_curves; c++) {
        int n = m->roc_n[c];
        double *x = malloc(((size_t)n + 1) * sizeof *x);
        if (!x) nn_fatal("out of memory");
        for (int i = 0; i < n; i++) x[i] = m->roc_fpr[c][i];
        const double *col = pal[c % 8];
        /* a step curve: draw as a polyline of its points */
        draw_series(cr, &a, x, m->roc_tpr[c], n, col[0], col[1], col[2], 0, 0);
        free(x);
        int cls = m->k == 2 ? 1 : c;
        if (m->k == 2)
            snprintf(labels[nl], sizeof labels[nl], "%s vs %s (AUC = %.4f)", classes[1], classes[0], m->class_auc[1]);
        else
            snprintf(labels[nl], sizeof labels[nl], "%s vs rest (AUC = %.4f)", classes[cls], m->class_auc[cls]);
        le[nl] = (legend_entry){labels[nl], col[0], col[1], col[2], 0};
        nl++;
    }
    le[nl++] = (legend_entry){"chance (AUC = 0.5)", 0.6, 0.6, 0.6, 1};
    draw_legend(cr, &a, le, nl, 1);
    return finish(s, cr, path);
}

int nn_plot_image_grid(const char *path, const nn_image *imgs, const char *const *captions, int n,
                       int cols, int cell, const char *title) {
    if (n <= 0 || cols <= 0) return nn_set_error("%s: empty image grid", path);
    int rows = (n + cols - 1) / cols;
    int cap_h = captions ? 22 : 0, gap = 6, top = title ? 44 : 6;
    int W = cols * (cell + gap) + gap, H = top + rows * (cell + cap_h + gap) + gap;
    cairo_surface_t *s;
    cairo_t *cr = new_canvas(&s, W, H);
    for (int i = 0; i < n; i++) {
        const nn_image *im = &imgs[i];
        if (!im->rgb) continue;
        cairo_surface_t *is = cairo_image_surface_create(CAIRO_FORMAT_RGB24, im->w, im->h);
        unsigned char *d = cairo_image_surface_get_data(is);
        int stride = cairo_image_surface_get_stride(is);
        cairo_surface_flush(is);
        for (int y = 0; y < im->h; y++) {
            uint32_t *row = (uint32_t *)(d + (size_t)y * stride);
            const uint8_t *p = im->rgb + (size_t)y * im->w * 3;
            for (int x = 0; x < im->w; x++)
                row[x] = 0xff000000u | ((uint32_t)p[3 * x] << 16) | ((uint32_t)p[3 * x + 1] << 8) | p[3 * x + 2];
        }
        cairo_surface_mark_dirty(is);
        int gx = i % cols, gy = i / cols;
        double x = gap + gx * (cell + gap), y = top + gy * (cell + cap_h + gap);
        cairo_save(cr);
        cairo_translate(cr, x, y);
        cairo_scale(cr, (double)cell / im->w, (double)cell / im->h);
        cairo_set_source_surface(cr, is, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
        cairo_paint(cr);
        cairo_restore(cr);
        cairo_surface_destroy(is);
        if (captions && captions[i]) {
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            set_font(cr, 12, 0);
            text_at(cr, x + cell / 2.0, y + cell + 4, captions[i], 0.5, 0);
        }
    }
    if (title) {
        cairo_set_source_rgb(cr, 0, 0, 0);
        set_font(cr, 17, 1);
        text_at(cr, W / 2.0, 12, title, 0.5, 0);
    }
    return finish(s, cr, path);
}
