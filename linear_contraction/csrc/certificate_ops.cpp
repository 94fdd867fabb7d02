// The small-grid convolution certificate as a torch operator in the `linear_contraction` namespace (CPU, float64
// kernels). It runs inside the convolution constraint's own operator, so it needs no autograd formula or fake kernel.
#include <torch/library.h>
#include "grid_certificate.h"

TORCH_LIBRARY_FRAGMENT(linear_contraction, m) {
  m.def("grid_certificate(Tensor Wp, Tensor omega, float slack, Tensor? x, bool single) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(linear_contraction, CPU, m) {
  m.impl("grid_certificate", &linear_contraction::grid_certificate);
}
