/* lorac CLI — open a device, a GGUF model with its tokenizer and an optional LoRA adapter: what
 * `generate` and `eval` share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lorac/adapter.h"
#include "lorac/lorac.h"
#include "lorac/model.h"

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_model_close(cli_model *cm) {
    if (!cm) return;
    lc_lora_set_free(cm->lora);
    lc_model_free(cm->model);
    lc_tokenizer_free(cm->tok);
    lc_device_close(cm->dev);
    memset(cm, 0, sizeof *cm);
}

int cli_model_open(const char *cmd, const char *device, int threads, const char *model_path, const char *adapter,
                   cli_model *out) {
    memset(out, 0, sizeof *out);
    if (threads > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", threads);
        setenv("LORAC_THREADS", buf, 1);
    }
    const int opened = cli_open_device(cmd, device, &out->dev);
    if (opened != CLI_EXIT_OK) return opened;
    const lc_device_info *di = lc_device_get_info(out->dev);
    fprintf(stderr, "device: %s (%s", di->spec, di->name);
    if (di->is_cpu && strcmp(di->backend, "cpu") == 0)
        fprintf(stderr, ", threads %d, OpenBLAS %s", di->threads, cli_blas_corename());
    fprintf(stderr, ")\n");
    const double t0 = cli_now();
    if (lc_model_load_gguf(out->dev, model_path, &out->model, &out->tok) != LC_OK) {
        int rc = cli_lib_error(cmd, "loading the model");
        cli_model_close(out);
        return rc;
    }
    const lc_model_config *c = &out->model->cfg;
    char mem[32];
    fprintf(stderr,
            "model: %s, %s, %d layers, n_embd %d, %d heads / %d kv heads of %d, n_ff %d, vocab %d, context %d; "
            "%s on the device, loaded in %.2f s\n",
            model_path, lc_arch_name(c->arch), c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff,
            c->n_vocab, c->n_ctx_train, cli_format_bytes(mem, sizeof mem, lc_device_allocated(out->dev)),
            cli_now() - t0);
    if (adapter) {
        if (lc_adapter_load(out->model, adapter, &out->lora) != LC_OK) {
            int rc = cli_lib_error(cmd, "loading the adapter");
            cli_model_close(out);
            return rc;
        }
        fprintf(stderr, "adapter: %s, %d modules, r %d, lora_alpha %g\n", adapter, out->lora->n_modules,
                out->lora->cfg.r, (double)out->lora->cfg.lora_alpha);
    }
    return CLI_EXIT_OK;
}
