/* lorac CLI — what the subcommand files share: the subcommand table entry, option parsing and
 * error printing. The CLI is a thin layer over the library (lorac/lorac.h, model.h, train.h).
 *
 * Exit codes: 0 success, 1 the work failed (device, numbers, files), 2 bad command line.
 */
#ifndef LORAC_CLI_H
#define LORAC_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

typedef struct cli_command {
    const char *name;     /* "train" */
    const char *summary;  /* one line for `lorac --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    void (*help)(void);   /* full help on stdout */
} cli_command;

/* Subcommands (one file each). */
int cli_devices(int argc, char **argv);
void cli_devices_help(void);
int cli_train(int argc, char **argv);
void cli_train_help(void);

int cli_generate(int argc, char **argv);
void cli_generate_help(void);
int cli_eval(int argc, char **argv);
void cli_eval_help(void);
int cli_merge(int argc, char **argv);
void cli_merge_help(void);
int cli_export(int argc, char **argv);
void cli_export_help(void);

/* What `generate` and `eval` open (cli_model.c). */
typedef struct lc_device lc_device;
typedef struct lc_model lc_model;
typedef struct lc_tokenizer lc_tokenizer;
typedef struct lc_lora_set lc_lora_set;
typedef struct cli_model {
    lc_device *dev;
    lc_model *model;
    lc_tokenizer *tok;
    lc_lora_set *lora;   /* NULL without --adapter */
} cli_model;

/* Set LORAC_THREADS when threads > 0, open `device` (NULL: $LORAC_DEVICE, else auto), load the GGUF
 * model and its tokenizer, and the adapter when `adapter` is not NULL; print one line about each
 * on stderr. On failure prints the error ("lorac <cmd>: ...") and returns CLI_EXIT_FAIL with
 * nothing left open; CLI_EXIT_OK on success. */
int cli_model_open(const char *cmd, const char *device, int threads, const char *model_path, const char *adapter,
                   cli_model *out);
/* Free what cli_model_open opened. */
void cli_model_close(cli_model *cm);

/* Useful FLOPs of one training step of n_seq sequences of seq_len tokens on `model` with LoRA
 * `lcfg` (NULL: no LoRA): products only, a multiply-add = 2 FLOPs; the rules are in cli_flops.c. */
typedef struct lc_lora_config lc_lora_config;
double cli_train_step_flops(const lc_model *model, const lc_lora_config *lcfg, int n_seq, int seq_len);

/* OpenBLAS cblas_sgemm rate in GFLOP/s for n x n x n (best of `reps` calls after one warm-up);
 * 0 when out of memory. The reference of `lorac train`'s useful-FLOP/s ratio. */
double cli_sgemm_gflops(int n, int reps);

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double cli_now(void);

/* "lorac <cmd>: <message>\n" on stderr, then a hint to run `lorac <cmd> --help`. Returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The kernel set OpenBLAS uses ("SkylakeX", "Haswell", ...; cli_blas.c). */
const char *cli_blas_corename(void);

/* lc_device_open(spec) (NULL: $LORAC_DEVICE, else auto). On failure prints "lorac <cmd>: cannot
 * open device ..." with the reason and a pointer to 'lorac devices', and returns CLI_EXIT_USAGE for
 * a malformed spec (LC_ERR_INVALID_ARG), else CLI_EXIT_FAIL; CLI_EXIT_OK with *dev set otherwise. */
int cli_open_device(const char *cmd, const char *spec, lc_device **dev);

/* "lorac <cmd>: <what>: <lc_last_error()>\n" on stderr. Returns CLI_EXIT_FAIL. */
int cli_lib_error(const char *cmd, const char *what);

/* Option matching. At argv[*i], if the argument is `name` or `name=VALUE`: for flags
 * (value == NULL) returns true when it is exactly `name`; for options with a value stores the
 * value (the next argument, or the text after '=') in *value and advances *i past it.
 * A missing value sets *value = NULL and still returns true (the caller reports it). */
bool cli_flag(int argc, char **argv, int *i, const char *name);
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value);

/* Strict number parsing for option `name` (whole string, range-checked); on failure print a
 * usage error naming the option, the value and the accepted range, and return false. */
bool cli_parse_int(const char *cmd, const char *name, const char *s, long long lo, long long hi, int *out);
bool cli_parse_u64(const char *cmd, const char *name, const char *s, uint64_t *out);
bool cli_parse_float(const char *cmd, const char *name, const char *s, double lo, double hi, bool lo_open,
                     float *out);

/* "1.5 GiB", "512 MiB" into buf. */
const char *cli_format_bytes(char *buf, int cap, uint64_t bytes);
/* "42s", "3m05s", "1h02m" into buf. */
const char *cli_format_duration(char *buf, int cap, double seconds);

#endif
