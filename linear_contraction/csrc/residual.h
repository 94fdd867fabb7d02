// One invertible residual layer y = x + g(x), g = W_L ∘ a ∘ … ∘ a ∘ W_1 (affine maps W_i h + b_i, a 1-Lipschitz
// activation between them): forward, backward, inverse by fixed-point iteration with per-sample stopping, and the
// inverse's backward by the adjoint fixed point. Header-only on ATen, so that the Python extension (residual_ops.cpp)
// and the stand-alone program (program/main.cpp) compile the same code.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace linear_contraction {

enum class Activation { Elu, Tanh, LipSwish };

inline Activation parse_activation(const std::string& name) {
  if (name == "elu") return Activation::Elu;
  if (name == "tanh") return Activation::Tanh;
  if (name == "lipswish") return Activation::LipSwish;
  TORCH_CHECK(false, "linear_contraction native residual layer: unknown activation '", name,
              "'; expected 'elu', 'tanh' or 'lipswish' (the 1-Lipschitz activations of contractive_mlp).");
}

// The residual function g: weights W_i (out_i, in_i) and biases b_i (out_i), the activation between layers.
struct Residual {
  std::vector<at::Tensor> W, b, Wt;  // Wt: the transposes, as views made once
  Activation act;

  Residual(at::TensorList weights, at::TensorList biases, const std::string& activation)
      : W(weights.vec()), b(biases.vec()), act(parse_activation(activation)) {
    TORCH_CHECK(!W.empty(), "linear_contraction native residual layer: expected at least one weight, got none.");
    TORCH_CHECK(W.size() == b.size(), "linear_contraction native residual layer: expected one bias per weight, got ",
                W.size(), " weights and ", b.size(), " biases (pass zeros for a layer without bias).");
    for (size_t i = 0; i < W.size(); ++i) {
      TORCH_CHECK(W[i].dim() == 2 && b[i].dim() == 1 && b[i].size(0) == W[i].size(0),
                  "linear_contraction native residual layer: layer ", i, " expected a weight (out, in) and a bias (out), got ",
                  W[i].sizes(), " and ", b[i].sizes(), ".");
      TORCH_CHECK(i == 0 || W[i].size(1) == W[i - 1].size(0), "linear_contraction native residual layer: layer ", i,
                  " takes ", W[i].size(1), " features but layer ", i - 1, " gives ", W[i - 1].size(0), ".");
    }
    TORCH_CHECK(W.front().size(1) == W.back().size(0), "linear_contraction native residual layer: g must map R^d to R^d, but it maps ",
                W.front().size(1), " features to ", W.back().size(0), ".");
    for (const auto& w : W) Wt.push_back(w.t());
  }
  size_t depth() const { return W.size(); }
  int64_t features() const { return W.front().size(1); }

  at::Tensor activate(const at::Tensor& u) const {
    switch (act) {
      case Activation::Elu: return at::elu(u);
      case Activation::Tanh: return at::tanh(u);
      default: return u * at::sigmoid(u).div_(1.1);
    }
  }
  at::Tensor activate_(at::Tensor& u) const {
    switch (act) {
      case Activation::Elu: return at::elu_(u);
      case Activation::Tanh: return u.tanh_();
      default: return u.mul_(at::sigmoid(u).div_(1.1));
    }
  }
  // a'(u), from the pre-activation u and the activation h = a(u)
  at::Tensor slope(const at::Tensor& u, const at::Tensor& h) const {
    switch (act) {
      case Activation::Elu: return (h + 1).clamp_max_(1);    // 1 where u > 0, e^u = h + 1 elsewhere
      case Activation::Tanh: return 1 - h * h;
      default: { auto s = at::sigmoid(u); return (s + u * s * (1 - s)) / 1.1; }
    }
  }
  // g(x); with a tape, also the input of every layer (inputs) and a' at every hidden pre-activation (slopes).
  // With `c_shifted` = c − b_L (c minus the last bias), returns c − g(x) instead: the last layer and the subtraction in
  // one addmm.
  at::Tensor apply(const at::Tensor& x, std::vector<at::Tensor>* inputs = nullptr, std::vector<at::Tensor>* slopes = nullptr,
                   const at::Tensor* c_shifted = nullptr) const {
    at::Tensor h = x;
    for (size_t i = 0; i + 1 < depth(); ++i) {
      if (inputs) inputs->push_back(h);
      at::Tensor u = at::addmm(b[i], h, Wt[i]);
      if (slopes) { h = activate(u); slopes->push_back(slope(u, h)); }
      else h = activate_(u);                                 // u is not needed again: in place
    }
    if (inputs) inputs->push_back(h);
    if (c_shifted) return at::addmm(*c_shifted, h, Wt.back(), 1, -1);
    return at::addmm(b.back(), h, Wt.back());
  }
  // Jᵀ v at the taped point: the cotangent of x; with gW/gb, also the cotangents of the parameters
  at::Tensor vjp(const std::vector<at::Tensor>& inputs, const std::vector<at::Tensor>& slopes, at::Tensor v,
                 std::vector<at::Tensor>* gW = nullptr, std::vector<at::Tensor>* gb = nullptr) const {
    for (size_t k = depth(); k-- > 0;) {
      if (gW) { (*gW)[k] = at::mm(v.t(), inputs[k]); (*gb)[k] = v.sum(0); }
      v = at::mm(v, W[k]);
      if (k > 0) v.mul_(slopes[k - 1]);                      // v is fresh from mm: in place
    }
    return v;
  }
};

// Per-sample 2-norms of a (batch, d) tensor, accumulated in at least float32.
inline at::Tensor row_norms(const at::Tensor& x) {
  return at::linalg_vector_norm(x, 2, at::IntArrayRef{1}, false, at::promote_types(x.scalar_type(), at::kFloat));
}

// One step's bookkeeping in one pass over the rows (CPU, contiguous float or double): the residuals r = ‖f − z‖, the
// slack r − (atol + rtol‖f‖) (≤ 0: met the tolerance), and whether some sample stops (slack ≤ 0 or NaN) and whether
// some residual did not shrink below its best (r ≥ best_r or NaN). Elsewhere the same with ATen operations.
struct StepFlags { bool some_stop, all_stop, some_grew; };

template <typename T>
StepFlags residual_rows_cpu(const at::Tensor& f, const at::Tensor& z, const at::Tensor& best_r, at::Tensor& r, at::Tensor& slack,
                            double atol, double rtol) {
  const int64_t n = f.size(0), d = f.size(1);
  const T *fp = f.data_ptr<T>(), *zp = z.data_ptr<T>(), *bp = best_r.data_ptr<T>();
  T *rp = r.data_ptr<T>(), *sp = slack.data_ptr<T>();
  StepFlags out{false, true, false};
  for (int64_t i = 0; i < n; ++i) {
    double s = 0, nf = 0;
    const T *fi = fp + i * d, *zi = zp + i * d;
    for (int64_t j = 0; j < d; ++j) { const double e = double(fi[j]) - double(zi[j]); s += e * e; }
    if (rtol > 0) for (int64_t j = 0; j < d; ++j) nf += double(fi[j]) * double(fi[j]);
    const double ri = std::sqrt(s), sl = ri - (atol + rtol * std::sqrt(nf));
    rp[i] = T(ri); sp[i] = T(sl);
    out.some_stop |= !(sl > 0);
    out.all_stop &= !(sl > 0);
    out.some_grew |= !(T(ri) < bp[i]);
  }
  return out;
}

inline StepFlags residual_rows(const at::Tensor& f, const at::Tensor& z, const at::Tensor& best_r, at::Tensor& r, at::Tensor& slack,
                               double atol, double rtol) {
  const auto st = f.scalar_type();
  if (f.device().is_cpu() && (st == at::kFloat || st == at::kDouble) && f.is_contiguous() && z.is_contiguous() &&
      z.scalar_type() == st && best_r.scalar_type() == st && best_r.is_contiguous()) {
    r = at::empty({f.size(0)}, best_r.options()); slack = at::empty_like(r);
    return st == at::kFloat ? residual_rows_cpu<float>(f, z, best_r, r, slack, atol, rtol)
                            : residual_rows_cpu<double>(f, z, best_r, r, slack, atol, rtol);
  }
  r = row_norms(f - z);
  slack = rtol > 0 ? r - row_norms(f).mul_(rtol).add_(atol) : r - atol;
  at::Tensor flags = at::stack({slack.min(), slack.max(), (r - best_r).max()}).to(at::kDouble).cpu();   // one synchronisation
  const double* fl = flags.data_ptr<double>();
  return {!(fl[0] > 0), !(fl[1] > 0), !(fl[2] < 0)};
}

inline void check_batch(const at::Tensor& x, const Residual& g, const char* name) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == g.features(), "linear_contraction native residual layer: expected ", name,
              " of shape (batch, ", g.features(), "), got ", x.sizes(), ".");
  TORCH_CHECK(x.is_floating_point() && x.scalar_type() == g.W.front().scalar_type(), "linear_contraction native residual layer: ",
              name, " is ", x.scalar_type(), " but the weights are ", g.W.front().scalar_type(), "; cast one to the other.");
}

// Solve z = F(z) per sample, F(z) = c − T(z), starting at z0, stopping each sample when ‖F(z) − z‖ ≤ atol + rtol‖F(z)‖.
// A stopped sample leaves the batch: the iteration runs on the samples still active only. Returns F(z) at each sample's
// stopping iterate (at its best iterate if it never met the tolerance), the residual ‖F(z) − z‖ there and the
// evaluations of T it took (negative: missed the tolerance). `map(idx, c, z)` returns c − T(z) on the rows `idx` of the
// problem (c and z hold those rows). A step's bookkeeping is one pass over the rows on CPU (`residual_rows`; a handful
// of operations and one synchronisation elsewhere); the best iterate is copied only in the rare step where some
// sample's residual grew, the batch compacted only in a step where some but not all samples stop.
template <class Map>
std::tuple<at::Tensor, at::Tensor, at::Tensor> fixed_point_rows(const at::Tensor& c, const at::Tensor& z0, Map&& map,
                                                                double atol, double rtol, int64_t maxiter,
                                                                const std::string& what, bool report, bool raise) {
  TORCH_CHECK(atol >= 0 && rtol >= 0, what, ": expected atol >= 0 and rtol >= 0, got atol=", atol, ", rtol=", rtol, ".");
  TORCH_CHECK(maxiter >= 1, what, ": expected maxiter >= 1, got ", maxiter, ".");
  const int64_t B = c.size(0);
  const double inf = std::numeric_limits<double>::infinity();
  auto out = at::empty_like(c);
  auto res = at::full({B}, inf, c.options().dtype(at::promote_types(c.scalar_type(), at::kFloat)));
  auto steps = at::zeros({B}, c.options().dtype(at::kLong));
  if (B == 0) return {out, res, steps};
  auto idx = at::arange(B, c.options().dtype(at::kLong));
  at::Tensor z = z0.contiguous(), ca = c, best_f = z0, best_r = at::full({B}, inf, res.options());  // best_*: of the active rows
  for (int64_t k = 0; k < maxiter && idx.numel() > 0; ++k) {
    at::Tensor f = map(idx, ca, z);
    at::Tensor r, slack;
    const auto [some_stop, all_stop, some_grew] = residual_rows(f, z, best_r, r, slack, atol, rtol);
    if (some_grew) {                                          // keep each sample's best iterate
      at::Tensor take = r < best_r;
      best_f = at::where(take.unsqueeze(1), f, best_f);
      best_r = at::where(take, r, best_r);
    } else {
      best_f = f; best_r = r;
    }
    const bool last = k + 1 == maxiter;
    if (all_stop || last) {                                  // every active sample stops here: no selection
      at::Tensor done = (slack > 0).logical_not_().logical_and_(at::isfinite(r));
      out.index_copy_(0, idx, at::where(done.unsqueeze(1), f, best_f));
      res.index_copy_(0, idx, at::where(done, r, best_r));
      steps.index_copy_(0, idx, at::where(done, at::full_like(idx, k + 1), at::full_like(idx, -(k + 1))));
      break;
    }
    if (some_stop) {
      at::Tensor go_on = slack > 0;                           // false for a met tolerance and for NaN
      at::Tensor done = go_on.logical_not().logical_and_(at::isfinite(r));
      at::Tensor stop = go_on.logical_not();                 // NaN samples stop too (and are reported)
      at::Tensor rows = idx.masked_select(stop);
      out.index_copy_(0, rows, at::where(done.unsqueeze(1), f, best_f).index({stop}));
      res.index_copy_(0, rows, at::where(done, r, best_r).masked_select(stop));
      steps.index_copy_(0, rows, at::where(done, at::full_like(idx, k + 1), at::full_like(idx, -(k + 1))).masked_select(stop));
      at::Tensor keep = stop.logical_not();
      idx = idx.masked_select(keep);
      z = f.index({keep}); ca = ca.index({keep}); best_f = best_f.index({keep}); best_r = best_r.index({keep});
    } else {
      z = f;
    }
  }
  if (report) {  // else the caller reads `steps` (the Python wrapper reports with its own warning and error classes)
    at::Tensor missed = steps < 0;
    int64_t n_missed = missed.sum().item<int64_t>();
    if (n_missed > 0) {
      std::ostringstream msg;
      msg << what << " did not converge: " << n_missed << " of " << B << " samples missed the tolerance after " << maxiter
          << " evaluations (worst residual " << res.masked_select(missed).max().item<double>() << "; asked atol=" << atol
          << " + rtol=" << rtol << "·‖x‖). Increase maxiter or loosen atol/rtol; if the residual does not decrease, check "
          << "that g is a contraction (Lipschitz constant < 1).";
      TORCH_CHECK(!raise, msg.str());
      TORCH_WARN(msg.str());
    }
  }
  return {out, res, steps};
}

// y = x + g(x)
inline at::Tensor residual_forward(const at::Tensor& x, const Residual& g) {
  check_batch(x, g, "x");
  return x + g.apply(x);
}

// (x̄, W̄, b̄) from ȳ for y = x + g(x)
inline std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> residual_backward(
    const at::Tensor& grad_y, const at::Tensor& x, const Residual& g) {
  check_batch(x, g, "x");
  std::vector<at::Tensor> inputs, slopes, gW(g.depth()), gb(g.depth());
  g.apply(x, &inputs, &slopes);
  at::Tensor gx = grad_y + g.vjp(inputs, slopes, grad_y, &gW, &gb);
  return {gx, gW, gb};
}

// x with x + g(x) = y, by x ← y − g(x) from x = y; also the residual and the steps of each sample
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> residual_inverse(const at::Tensor& y, const Residual& g, double atol,
                                                                      double rtol, int64_t maxiter, bool report, bool raise) {
  check_batch(y, g, "y");
  // the iteration carries c = y − b_L (the last bias subtracted once), so that each step is y − g(x) in one addmm
  auto map = [&](const at::Tensor&, const at::Tensor& c, const at::Tensor& z) { return g.apply(z, nullptr, nullptr, &c); };
  return fixed_point_rows(y - g.b.back(), y, map, atol, rtol, maxiter, "residual_inverse", report, raise);
}

// (ȳ, W̄, b̄) from x̄ for x = F⁻¹(y): ȳ = a with a = x̄ − J_g(x)ᵀ a (the adjoint fixed point), θ̄ = −(∂g/∂θ)ᵀ a
inline std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor, at::Tensor> residual_inverse_backward(
    const at::Tensor& grad_x, const at::Tensor& x, const Residual& g, double atol, double rtol, int64_t maxiter, bool report, bool raise) {
  check_batch(x, g, "x");
  std::vector<at::Tensor> inputs, slopes;
  g.apply(x, &inputs, &slopes);
  std::vector<at::Tensor> in_a = inputs, sl_a = slopes;
  int64_t n_active = x.size(0);
  // The tape of the rows still active, re-selected from the full one by absolute row index when samples stop.
  auto map_abs = [&](const at::Tensor& idx, const at::Tensor& c, const at::Tensor& a) {
    if (idx.numel() != n_active) {
      for (size_t i = 0; i < inputs.size(); ++i) in_a[i] = inputs[i].index_select(0, idx);
      for (size_t i = 0; i < slopes.size(); ++i) sl_a[i] = slopes[i].index_select(0, idx);
      n_active = idx.numel();
    }
    return c - g.vjp(in_a, sl_a, a);
  };
  auto [a, res, steps] = fixed_point_rows(grad_x, grad_x, map_abs, atol, rtol, maxiter, "residual_inverse_backward", report, raise);
  std::vector<at::Tensor> gW(g.depth()), gb(g.depth());
  g.vjp(inputs, slopes, a.neg(), &gW, &gb);                 // θ̄ = −(∂g/∂θ)ᵀ a
  return {a, gW, gb, res, steps};
}

}  // namespace linear_contraction
