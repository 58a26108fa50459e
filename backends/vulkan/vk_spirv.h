/* lorac Vulkan backend — the embedded SPIR-V table (generated into the build directory as
 * vk_spirv.c from each shaders/NAME.comp; see CMakeLists.txt). */
#ifndef LORAC_VK_SPIRV_H
#define LORAC_VK_SPIRV_H

#include <stddef.h>
#include <stdint.h>

typedef struct vk_spirv_entry {
    const char *name;     /* file stem: "gemm_nt" for shaders/gemm_nt.comp */
    const uint32_t *code; /* SPIR-V words */
    size_t size;          /* bytes */
} vk_spirv_entry;

/* Terminated by an entry whose name is NULL. */
extern const vk_spirv_entry vk_spirv_table[];

#endif
