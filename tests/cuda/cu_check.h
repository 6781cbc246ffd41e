/* A CUDA runtime call in a test or benchmark: on failure print where, the call, the runtime's
 * message and the last ls_cuda_* message, and exit with `code` (programs, not libraries). */
#ifndef LS_TESTS_CU_CHECK_H
#define LS_TESTS_CU_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/kernels_cuda.h"

#define LS_CU_OR_EXIT(call, code)                                                          \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s [%s]\n", __FILE__, __LINE__, #call,             \
                    cudaGetErrorString(e_), ls_cuda_error_message());                     \
            exit(code);                                                                    \
        }                                                                                  \
    } while (0)

#endif
