/* The CUDA backend's entry points in a binary built without nvcc: backend cuda is then a
 * clear error, never a silent fall back to the CPU. */
#include "engine/backend.h"

int ls_backend_cuda_built(void) { return 0; }

int ls_backend_cuda_available(void) { return 0; }

int ls_backend_cuda_create(const ls_model *m, int fast, int tf32, ls_backend **out, ls_err *err) {
    (void)m;
    (void)fast;
    (void)tf32;
    *out = NULL;
    return ls_errf(err, "backend cuda: this binary was built without CUDA (nvcc was not found "
                        "when it was configured); rebuild on a machine with nvcc, or use backend: cpu");
}

void ls_backend_cuda_set_graphs(const ls_backend *b, int on) {
    (void)b;
    (void)on;
}

void ls_backend_cuda_graph_stats(const ls_backend *b, int64_t *captures, int64_t *replays) {
    (void)b;
    *captures = *replays = 0;
}
