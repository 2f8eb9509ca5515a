// tmplc shim: the part of llama.cpp's include/llama.h that src/llama-chat.cpp needs,
// so that the built-in chat templates compile without the rest of libllama.
#pragma once
#include <cstddef>
#include <cstdint>

#define LLAMA_API

extern "C" {
typedef struct llama_chat_message {
    const char * role;
    const char * content;
} llama_chat_message;

LLAMA_API int32_t llama_chat_builtin_templates(const char ** output, size_t len);
}
