/* test_layers_fatal.c — shape mismatches stop through nn_fatal: each case
 * runs in a fork()ed child; we check exit code 2 and the stderr message. */
#include "nnmask.h"
#include "testutil.h"

#include <sys/wait.h>
#include <unistd.h>

static float buf[4096];

static void case_conv_out(void) {
    nn_conv_geom g;
    nn_conv_geom_init(&g, 8, 8, 3, 3, 1, 1, NN_PAD_SAME, 0);
    nn_tensor x = nn_tensor_make(buf, 1, 8, 8, 2), y = nn_tensor_make(buf + 512, 1, 7, 8, 4);
    nn_conv2d_forward(&y, &x, buf, NULL, &g, NN_ACT_NONE, buf + 1024);
}
static void case_conv_in(void) {
    nn_conv_geom g;
    nn_conv_geom_init(&g, 8, 8, 1, 1, 1, 1, NN_PAD_SAME, 0);
    nn_tensor x = nn_tensor_make(buf, 1, 9, 8, 2), y = nn_tensor_make(buf + 512, 1, 8, 8, 4);
    nn_conv2d_forward(&y, &x, buf, NULL, &g, NN_ACT_NONE, NULL);
}
static void case_conv_din(void) {
    nn_conv_geom g;
    nn_conv_geom_init(&g, 4, 4, 3, 3, 1, 1, NN_PAD_SAME, 0);
    nn_tensor x = nn_tensor_make(buf, 1, 4, 4, 2), dy = nn_tensor_make(buf + 512, 1, 4, 4, 3);
    nn_tensor dx = nn_tensor_make(buf + 1024, 1, 4, 4, 3);
    nn_conv2d_backward(&dx, buf, NULL, &dy, &x, buf, &g, buf + 2048);
}
static void case_dw_channels(void) {
    nn_conv_geom g;
    nn_conv_geom_init(&g, 4, 4, 3, 3, 2, 1, NN_PAD_SAME, 0);
    nn_tensor x = nn_tensor_make(buf, 2, 4, 4, 5), dy = nn_tensor_make(buf + 512, 2, 2, 2, 6);
    nn_dwconv2d_backward(NULL, buf + 1024, NULL, &dy, &x, buf, &g);
}
static void case_bn(void) {
    nn_tensor x = nn_tensor_make(buf, 2, 3, 3, 4), y = nn_tensor_make(buf + 512, 2, 3, 3, 5);
    nn_batchnorm_forward_infer(&y, &x, buf, buf, buf, buf, 1e-3f, NN_ACT_NONE);
}
static void case_add(void) {
    nn_tensor a = nn_tensor_make(buf, 2, 3, 3, 4), b = nn_tensor_make(buf + 512, 1, 3, 3, 4);
    nn_tensor y = nn_tensor_make(buf + 1024, 2, 3, 3, 4);
    nn_add_forward(&y, &a, &b);
}
static void case_dense(void) {
    nn_tensor x = nn_tensor_make(buf, 3, 1, 1, 8), y = nn_tensor_make(buf + 512, 2, 1, 1, 4);
    nn_dense_forward(&y, &x, buf, NULL, NN_ACT_NONE);
}
static void case_concat(void) {
    nn_tensor a = nn_tensor_make(buf, 1, 2, 2, 3), b = nn_tensor_make(buf + 512, 1, 2, 2, 4);
    nn_tensor y = nn_tensor_make(buf + 1024, 1, 2, 2, 8);
    const nn_tensor *ins[2] = {&a, &b};
    nn_concat_forward(&y, ins, 2);
}
static void case_gap(void) {
    nn_tensor x = nn_tensor_make(buf, 2, 4, 4, 3), y = nn_tensor_make(buf + 512, 2, 1, 1, 4);
    nn_gap_forward(&y, &x);
}
static void case_xent_label(void) {
    float z[4] = {0};
    int y = 4;
    nn_softmax_xent(NULL, NULL, z, &y, NULL, 1, 4);
}

static void expect_fatal(const char *name, void (*fn)(void), const char *msg) {
    int pfd[2];
    if (pipe(pfd) != 0) {
        CHECK(0, "pipe failed");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        fn();
        _exit(0); /* reached only when no fatal error happened */
    }
    close(pfd[1]);
    char text[2048];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof text - 1 && (r = read(pfd[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)r;
    text[len] = 0;
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: child status %d (want exit 2)", name, st);
    CHECK(strstr(text, msg) != NULL, "%s: stderr \"%s\" lacks \"%s\"", name, text, msg);
}

int main(void) {
    expect_fatal("conv out", case_conv_out,
                 "nn_conv2d_forward: out: expected shape [1,8,8,-1] (-1 = any), got [1,7,8,4]");
    expect_fatal("conv in", case_conv_in, "nn_conv2d_forward: in: expected shape [-1,8,8,-1]");
    expect_fatal("conv din", case_conv_din, "nn_conv2d_backward: din");
    expect_fatal("dwconv channels", case_dw_channels, "nn_dwconv2d_backward: dout: expected shape [2,2,2,5]");
    expect_fatal("bn", case_bn, "nn_batchnorm_forward_infer: out");
    expect_fatal("add", case_add, "nn_add_forward: b");
    expect_fatal("dense", case_dense, "nn_dense_forward: out: expected shape [3,1,1,-1]");
    expect_fatal("concat", case_concat, "nn_concat_forward: out has 8 channels, inputs sum to 7");
    expect_fatal("gap", case_gap, "nn_gap_forward: out");
    expect_fatal("xent label", case_xent_label, "label 4 of row 0 not in [0,4)");
    return test_summary("test_layers_fatal");
}
