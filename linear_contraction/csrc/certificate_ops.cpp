// The certificates' hot paths as torch operators in the `linear_contraction` namespace (CPU): the small-grid convolution
// certificate, the batched Cholesky bounds of the large grids and the dense layer's refresh. Each runs inside its
// constraint's own operator or eager refresh, so none needs an autograd formula or a fake kernel.
#include <torch/library.h>
#include "grid_certificate.h"
#include "dense_certificate.h"
#include "batched_cholesky.h"

TORCH_LIBRARY_FRAGMENT(linear_contraction, m) {
  m.def("grid_certificate(Tensor Wp, Tensor omega, float slack, Tensor? x, bool single) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("dense_certificate(Tensor W, Tensor(a!) W64, Tensor anchor, float beta_a, Tensor(b!) G, Tensor(c!) M, "
        "Tensor(d!) L, Tensor V, float c, float slack, bool clip, float tol, float tol_value, int restarts) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("chol_bounds(Tensor M, Tensor s) -> Tensor");
  m.def("grid_lanes(Tensor C, Tensor A, Tensor x, int steps, bool single) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("lanes_chol_bounds(Tensor packed, Tensor lane, Tensor s) -> Tensor");
}

TORCH_LIBRARY_IMPL(linear_contraction, CPU, m) {
  m.impl("grid_certificate", &linear_contraction::grid_certificate);
  m.impl("dense_certificate", &linear_contraction::dense_certificate);
  m.impl("chol_bounds", &linear_contraction::chol_bounds);
  m.impl("grid_lanes", &linear_contraction::grid_lanes);
  m.impl("lanes_chol_bounds", &linear_contraction::lanes_chol_bounds);
}
