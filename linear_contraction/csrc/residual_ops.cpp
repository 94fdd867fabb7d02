// The native residual layer as torch operators in the `linear_contraction` namespace. The kernels are written with ATen
// operations, so one CompositeExplicitAutograd kernel serves every device; autograd formulas and fake (meta) kernels are
// registered from Python (linear_contraction/native.py), where torch.library pairs them with these schemas.
#include <torch/library.h>
#include "residual.h"

namespace linear_contraction {
namespace {

at::Tensor forward_op(const at::Tensor& x, at::TensorList W, at::TensorList b, std::string act) {
  at::AutoDispatchBelowADInplaceOrView guard;  // autograd is the registered formula's; the kernel's own ops skip it
  return residual_forward(x, Residual(W, b, act));
}

std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> backward_op(
    const at::Tensor& grad_y, const at::Tensor& x, at::TensorList W, at::TensorList b, std::string act) {
  at::AutoDispatchBelowADInplaceOrView guard;  // autograd is the registered formula's; the kernel's own ops skip it
  return residual_backward(grad_y, x, Residual(W, b, act));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> inverse_op(const at::Tensor& y, at::TensorList W, at::TensorList b,
                                                          std::string act, double atol, double rtol, int64_t maxiter,
                                                          bool report, bool raise) {
  at::AutoDispatchBelowADInplaceOrView guard;  // autograd is the registered formula's; the kernel's own ops skip it
  return residual_inverse(y, Residual(W, b, act), atol, rtol, maxiter, report, raise);
}

std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor, at::Tensor> inverse_backward_op(
    const at::Tensor& grad_x, const at::Tensor& x, at::TensorList W, at::TensorList b, std::string act, double atol,
    double rtol, int64_t maxiter, bool report, bool raise) {
  at::AutoDispatchBelowADInplaceOrView guard;  // autograd is the registered formula's; the kernel's own ops skip it
  return residual_inverse_backward(grad_x, x, Residual(W, b, act), atol, rtol, maxiter, report, raise);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(linear_contraction, m) {
  m.def("residual_forward(Tensor x, Tensor[] weights, Tensor[] biases, str activation) -> Tensor");
  m.def("residual_backward(Tensor grad_y, Tensor x, Tensor[] weights, Tensor[] biases, str activation) "
        "-> (Tensor, Tensor[], Tensor[])");
  m.def("residual_inverse(Tensor y, Tensor[] weights, Tensor[] biases, str activation, float atol, float rtol, "
        "int maxiter, bool report, bool throw) -> (Tensor, Tensor, Tensor)");
  m.def("residual_inverse_backward(Tensor grad_x, Tensor x, Tensor[] weights, Tensor[] biases, str activation, "
        "float atol, float rtol, int maxiter, bool report, bool throw) -> (Tensor, Tensor[], Tensor[], Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(linear_contraction, CompositeExplicitAutograd, m) {
  m.impl("residual_forward", &forward_op);
  m.impl("residual_backward", &backward_op);
  m.impl("residual_inverse", &inverse_op);
  m.impl("residual_inverse_backward", &inverse_backward_op);
}

}  // namespace linear_contraction
