/* st_roundtrip_helper.c — the C side of tests/st_roundtrip.py: "write PATH" saves known
 * tensors and prints them; "check PATH" reads every tensor of a Python-written file and prints it. */

#include "nnmask.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_tensor(const char *name, const char *dtype, int nd, const int64_t *shape,
                         const float *v, size_t n) {
    printf("T\t%s\t%s\t", name, dtype);
    for (int k = 0; k < nd; k++) printf(k ? ",%lld" : "%lld", (long long)shape[k]);
    printf("\t");
    for (size_t i = 0; i < n; i++) printf(i ? " %.9g" : "%.9g", v[i]);
    printf("\n");
}

static int do_write(const char *path) {
    static float a[6], conv[72], bias[4] = {1e-8f, -3.25f, 65504.f, 1e30f}, sc = 42.f;
    for (int i = 0; i < 6; i++) a[i] = i * 0.5f - 1.f;
    for (int i = 0; i < 72; i++) conv[i] = sinf((float)i) * 0.1f;
    int64_t sa[2] = {2, 3}, sconv[4] = {3, 3, 2, 4}, sb[1] = {4}, se[2] = {0, 5};
    nn_st_writer *w = nn_st_writer_new();
    int r = nn_st_writer_meta(w, "format", "pt") |
            nn_st_writer_meta(w, "note", "quote \" backslash \\ newline\n utf8 \xc3\xa9") |
            nn_st_writer_add_f32(w, "head/dense \"w\"", a, 2, sa) |
            nn_st_writer_add_f32(w, "conv", conv, 4, sconv) |
            nn_st_writer_add_f32(w, "bias", bias, 1, sb) |
            nn_st_writer_add_f32(w, "scalar", &sc, 0, NULL) |
            nn_st_writer_add_f32(w, "empty", NULL, 2, se) | nn_st_writer_save(w, path);
    nn_st_writer_free(w);
    if (r) {
        fprintf(stderr, "%s\n", nn_error());
        return 1;
    }
    print_tensor("head/dense \"w\"", "F32", 2, sa, a, 6);
    print_tensor("conv", "F32", 4, sconv, conv, 72);
    print_tensor("bias", "F32", 1, sb, bias, 4);
    print_tensor("scalar", "F32", 0, NULL, &sc, 1);
    print_tensor("empty", "F32", 2, se, NULL, 0);
    return 0;
}

static int do_check(const char *path) {
    nn_st *st = nn_st_open(path);
    if (!st) {
        printf("E\t%s\n", nn_error());
        return 1;
    }
    for (int i = 0; i < nn_st_meta_count(st); i++)
        printf("M\t%s\t%s\n", nn_st_meta_key(st, i), nn_st_meta(st, nn_st_meta_key(st, i)));
    for (int i = 0; i < nn_st_count(st); i++) {
        const char *dt, *name = nn_st_name(st, i);
        int nd;
        int64_t sh[NN_ST_MAX_DIMS];
        nn_st_info(st, i, &dt, &nd, sh);
        size_t n = 1;
        for (int k = 0; k < nd; k++) n *= (size_t)sh[k];
        float *v = malloc((n ? n : 1) * sizeof(float));
        if (nn_st_read_f32(st, name, v, nd, sh))
            printf("E\t%s\n", nn_error());
        else
            print_tensor(name, dt, nd, sh, v, n);
        free(v);
    }
    nn_st_close(st);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "write")) return do_write(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "check")) return do_check(argv[2]);
    fprintf(stderr, "usage: %s write|check FILE\n", argv[0]);
    return 2;
}
