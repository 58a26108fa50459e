/* lorac — the command-line front end: a table of subcommands over the library.
 *
 *   lorac --help | --version
 *   lorac <command> [options]      (each command has --help)
 *
 * Each command is one entry in `commands` and one file (cmd_<name>.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lorac/lorac.h"

static const cli_command commands[] = {
    {"train", "train a LoRA adapter on a GGUF model (--model), or on the built-in toy model (--toy)", cli_train, cli_train_help},
    {"generate", "generate text from a prompt with a GGUF model (KV cache; greedy or sampled)", cli_generate,
     cli_generate_help},
    {"eval", "perplexity of a GGUF model on a text file", cli_eval, cli_eval_help},
    {"merge", "merge a LoRA adapter into a GGUF model (f16, f32, or the original quant types)", cli_merge,
     cli_merge_help},
    {"export", "convert a LoRA adapter between PEFT and llama.cpp GGUF (or dump logits for checks)", cli_export,
     cli_export_help},
    {"devices", "list compute devices (CPU, OpenCL, Vulkan) and why a backend was skipped", cli_devices,
     cli_devices_help},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void print_help(void) {
    printf("lorac %s - LoRA fine-tuning of transformer language models on CPU, OpenCL and Vulkan devices\n\n",
           LORAC_VERSION_STRING);
    printf("Usage: lorac <command> [options]\n"
           "       lorac --help | --version\n\n"
           "Commands:\n");
    for (int i = 0; i < n_commands; i++) printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\nRun 'lorac <command> --help' for a command's options.\n"
           "Devices: --device cpu | opencl[:N] | vulkan[:N] | auto; the default is $LORAC_DEVICE, else auto\n"
           "(the first real GPU, else the CPU). Example: lorac train --model \"$(scripts/get-model.sh)\" --device cpu\n");
}

static void print_version(void) {
    printf("lorac %s\n", LORAC_VERSION_STRING);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help();
        return CLI_EXIT_USAGE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
        if (argc > 2 && strcmp(a, "help") == 0) {
            for (int i = 0; i < n_commands; i++)
                if (strcmp(argv[2], commands[i].name) == 0) {
                    commands[i].help();
                    return CLI_EXIT_OK;
                }
            return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
        }
        print_help();
        return CLI_EXIT_OK;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
        print_version();
        return CLI_EXIT_OK;
    }
    for (int i = 0; i < n_commands; i++)
        if (strcmp(a, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    if (a[0] == '-') return cli_usage_error(NULL, "unknown option '%s'; options go after the command", a);
    fprintf(stderr, "lorac: unknown command '%s'. Commands:", a);
    for (int i = 0; i < n_commands; i++) fprintf(stderr, " %s", commands[i].name);
    fprintf(stderr, "\nRun 'lorac --help' for details.\n");
    return CLI_EXIT_USAGE;
}
