/* lorac — LoRA fine-tuning on CPU, OpenCL and Vulkan devices. Include this one header. */
#ifndef LORAC_H
#define LORAC_H

#define LORAC_VERSION_MAJOR 0
#define LORAC_VERSION_MINOR 1
#define LORAC_VERSION_PATCH 0
#define LORAC_VERSION_STRING "0.1.0"

#include "lorac/status.h"
#include "lorac/dtype.h"
#include "lorac/rng.h"
#include "lorac/tensor.h"
#include "lorac/device.h"
#include "lorac/graph.h"
#include "lorac/lora.h"
#include "lorac/gguf.h"
#include "lorac/tokenizer.h"
#include "lorac/model.h"
#include "lorac/train.h"
#include "lorac/data.h"
#include "lorac/safetensors.h"
#include "lorac/adapter.h"
#include "lorac/infer.h"
#include "lorac/merge.h"
#include "lorac/checkpoint.h"

#endif
