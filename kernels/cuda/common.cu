/* Error reporting and device detection for the CUDA kernels. */
#include <stdarg.h>
#include <stdio.h>

#include "kernels/cuda/common.cuh"

static thread_local char ls_cuda_msg[512];

cudaError_t ls_cuda_fail(cudaError_t e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ls_cuda_msg, sizeof ls_cuda_msg, fmt, ap);
    va_end(ap);
    return e;
}

cudaError_t ls_cuda_launched(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return ls_cuda_fail(e, "%s: launch failed: %s", what, cudaGetErrorString(e));
    return cudaSuccess;
}

extern "C" const char *ls_cuda_error_message(void) { return ls_cuda_msg; }

extern "C" int ls_cuda_device_available(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();   /* clear the error: no device is not a failure */
        return 0;
    }
    return n > 0;
}
