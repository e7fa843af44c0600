/* test_config.c — nnmask-train's INI configuration: defaults, parsing,
 * file:line errors for unknown sections/keys and bad values, overrides,
 * validation, and the written effective config read back. */

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "nnmask.h"
#include "testutil.h"

static char dir[256];

static const char *write_ini(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void expect_error(const char *text, const char *want_line, const char *want_msg) {
    nn_config c;
    nn_config_defaults(&c);
    const char *p = write_ini("bad.ini", text);
    int r = nn_config_load(&c, p);
    CHECK(r == -1, "loading should fail: %s", text);
    char want[600];
    snprintf(want, sizeof want, "%s:%s: ", p, want_line);
    CHECK(strstr(nn_error(), want) == nn_error(), "error '%s' should start with '%s'", nn_error(), want);
    CHECK(strstr(nn_error(), want_msg) != NULL, "error '%s' should mention '%s'", nn_error(), want_msg);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/nnmask-test-config-%d", (int)getpid());
    nn_mkdir_p(dir);
    nn_config c;
    nn_config_defaults(&c);
    /* defaults = the reference notebook */
    CHECK(c.epochs == 20 && c.batch == 32, "epochs %d batch %d", c.epochs, c.batch);
    CHECK_CLOSE(c.lr, 1e-4, 1e-6, "lr");
    CHECK(c.n_classes == 2 && !strcmp(c.classes[0], "with_mask") && !strcmp(c.classes[1], "without_mask"), "classes");
    CHECK_CLOSE(c.split[0], 0.8, 1e-6, "split train");
    CHECK_CLOSE(c.rotation, 20, 1e-6, "rotation");
    CHECK_CLOSE(c.zoom, 0.15, 1e-6, "zoom");
    CHECK(c.freeze == NN_FREEZE_ALL && c.head_units == 128, "freeze/head");
    CHECK(c.schedule == NN_SCHED_INVERSE_TIME && c.threshold_rule == NN_THRESH_FIXED, "schedule/threshold");

    /* a full file */
    char ok[512];
    snprintf(ok, sizeof ok, "%s", write_ini("ok.ini",
                               "; comment\n[data]\ndir = a/b, c\nclasses = m, n, o\nsplit = 70/15/15\nseed = 7\n"
                               "[model]\nfreeze = last 3\nalpha = 0.35\ninput_size = 96\n"
                               "[train]\nepochs = 3\nschedule = cosine\nthreshold = min_recall:n:0.97\n"
                               "[augment]\nhflip = no\nfill = reflect\njpeg_prob = 0.5\n[output]\ndir = out/x\n"));
    CHECK(nn_config_load(&c, ok) == 0, "load: %s", nn_error());
    CHECK(c.n_dirs == 2 && !strcmp(c.dirs[0], "a/b") && !strcmp(c.dirs[1], "c"), "dirs %d", c.n_dirs);
    CHECK(c.n_classes == 3 && !strcmp(c.classes[2], "o"), "classes %d", c.n_classes);
    CHECK_CLOSE(c.split[1], 0.15, 1e-6, "split val (percent)");
    CHECK(c.seed == 7 && c.freeze == NN_FREEZE_LAST && c.freeze_last == 3, "seed/freeze");
    CHECK(c.epochs == 3 && c.schedule == NN_SCHED_COSINE && !c.hflip && c.fill == NN_FILL_REFLECT, "train/aug");
    CHECK(c.threshold_rule == NN_THRESH_MIN_RECALL && !strcmp(c.threshold_class_name, "n"), "threshold rule");
    CHECK_CLOSE(c.threshold_min_recall, 0.97, 1e-6, "min recall");
    CHECK(!strcmp(c.out_dir, "out/x"), "out dir");
    /* 3 classes + a threshold rule is a validation error */
    CHECK(nn_config_validate(&c) == -1 && strstr(nn_error(), "2 classes"), "validate: %s", nn_error());

    /* overrides */
    CHECK(nn_config_override(&c, "train.epochs=9") == 0 && c.epochs == 9, "override epochs");
    CHECK(nn_config_override(&c, "data.classes=with_mask,without_mask") == 0 && c.n_classes == 2, "override classes");
    CHECK(nn_config_validate(&c) == -1 && strstr(nn_error(), "class 'n' is not in data.classes"), "%s", nn_error());
    CHECK(nn_config_override(&c, "train.threshold=min_recall:without_mask:0.95") == 0, "%s", nn_error());
    CHECK(nn_config_validate(&c) == 0 && c.threshold_class == 1, "validate: %s", nn_error());
    /* cross-validation keys */
    CHECK(nn_config_override(&c, "data.folds=2") == 0, "%s", nn_error());
    CHECK(nn_config_validate(&c) == -1 && strstr(nn_error(), "at least 3 parts"), "folds 2: %s", nn_error());
    CHECK(nn_config_override(&c, "data.folds=5") == 0 && nn_config_override(&c, "data.fold=5") == 0, "%s", nn_error());
    CHECK(nn_config_validate(&c) == -1 && strstr(nn_error(), "data.fold 5 is not a part of data.folds 5 (0..4)"),
          "fold 5 of 5: %s", nn_error());
    CHECK(nn_config_override(&c, "data.fold=4") == 0 && nn_config_validate(&c) == 0, "fold 4 of 5: %s", nn_error());
    CHECK(nn_config_override(&c, "data.folds=0") == 0, "%s", nn_error());
    CHECK(nn_config_validate(&c) == -1 && strstr(nn_error(), "without data.folds"), "fold without folds: %s", nn_error());
    CHECK(nn_config_override(&c, "data.fold=0") == 0 && nn_config_validate(&c) == 0, "%s", nn_error());
    CHECK(nn_config_override(&c, "train.epochs=x") == -1 && strstr(nn_error(), "override 'train.epochs=x': ") == nn_error(),
          "override error: %s", nn_error());
    CHECK(nn_config_override(&c, "train.nope=1") == -1 && strstr(nn_error(), "unknown key 'nope'"), "%s", nn_error());
    CHECK(nn_config_override(&c, "epochs=1") == -1 && strstr(nn_error(), "section.key=value"), "%s", nn_error());

    /* errors name file:line */
    expect_error("[train]\nepochs = 3\nepocs = 4\n", "3", "unknown key 'epocs' in [train]");
    expect_error("[train]\nepochs = many\n", "2", "'many' is not an integer");
    expect_error("[data]\nseed = 1\n\n[trian]\nepochs = 2\n", "4", "unknown section [trian]");
    expect_error("[trian]\n", "1", "unknown section [trian]");
    expect_error("[model]\nfreeze = some\n", "2", "expected all, none or 'last N'");
    expect_error("[train]\nlr = -1\n", "2", "out of range");
    expect_error("[augment]\nhflip = maybe\n", "2", "not a boolean");
    expect_error("[data]\nsplit = 0.5, 0.1\n", "2", "three fractions");
    expect_error("[data]\nsplit = 0.5, 0.1, 0.1\n", "2", "sum to 1");
    expect_error("[train]\noptimizer = rmsprop\n", "2", "not one of adam|sgd");
    expect_error("[train]\nthreshold = 1.5\n", "2", "out of range");
    expect_error("[data]\nclasses = a, a\n", "2", "given twice");
    expect_error("[model]\nthis line has no equals sign\n", "2", "syntax error");
    expect_error("[model]\ninput_size = 100.5\n", "2", "not an integer");

    /* the effective config written by a run reads back identically */
    nn_config_defaults(&c);
    nn_config_load(&c, ok);
    c.n_classes = 2;
    char p2[512];
    snprintf(p2, sizeof p2, "%s/written.ini", dir);
    FILE *f = fopen(p2, "w");
    nn_config_write(&c, f);
    fclose(f);
    nn_config d;
    nn_config_defaults(&d);
    CHECK(nn_config_load(&d, p2) == 0, "reload written config: %s", nn_error());
    CHECK(d.epochs == 3 && d.n_dirs == 2 && d.freeze_last == 3 && d.threshold_rule == NN_THRESH_MIN_RECALL &&
              !strcmp(d.threshold_class_name, "n") && d.fill == NN_FILL_REFLECT && d.seed == 7,
          "written config round trip");

    /* missing file */
    CHECK(nn_config_load(&c, "/nonexistent/x.ini") == -1 && strstr(nn_error(), "/nonexistent/x.ini"), "%s", nn_error());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (getenv("KEEP") || system(cmd)) {
    }
    return test_summary("test_config");
}
