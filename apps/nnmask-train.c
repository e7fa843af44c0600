/* nnmask-train — trains a mask classifier from an INI config:
 * nnmask-train CONFIG.ini [--resume] [section.key=value ...]. */

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "nnmask.h"
#include "trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nnmask-train CONFIG.ini [--resume] [section.key=value ...]\n"
            "       nnmask-train --help-config      (every key with its default)\n"
            "\n"
            "Trains a MobileNetV2 transfer-learning classifier as CONFIG.ini says and\n"
            "writes model.safetensors, metrics.json, report.txt, history.csv, split.csv and\n"
            "the plots (curves.png, confusion.png, roc.png, augment_preview.png) into\n"
            "[output] dir. --resume continues a killed run from its last checkpoint.\n"
            "Overrides such as train.epochs=5 or output.dir=runs/x change one key.\n");
}

int main(int argc, char **argv) {
    const char *cfg_path = NULL;
    int resume = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--help-config")) {
            nn_config_print_keys(stdout);
            return 0;
        }
    }
    nn_config c;
    nn_config_defaults(&c);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            resume = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "nnmask-train: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!strchr(argv[i], '=')) {
            if (cfg_path) {
                fprintf(stderr, "nnmask-train: more than one config file ('%s', '%s')\n", cfg_path, argv[i]);
                return 2;
            }
            cfg_path = argv[i];
        }
    }
    if (!cfg_path) {
        usage(stderr);
        return 2;
    }
    if (nn_config_load(&c, cfg_path)) {
        fprintf(stderr, "nnmask-train: %s\n", nn_error());
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-' && strchr(argv[i], '=') && nn_config_override(&c, argv[i])) {
            fprintf(stderr, "nnmask-train: %s\n", nn_error());
            return 2;
        }
    if (nn_config_validate(&c)) {
        fprintf(stderr, "nnmask-train: %s: %s\n", cfg_path, nn_error());
        return 2;
    }
    if (nn_train_run(&c, resume)) {
        fprintf(stderr, "nnmask-train: error: %s\n", nn_error());
        return 1;
    }
    return 0;
}
