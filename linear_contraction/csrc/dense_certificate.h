// The dense layer's certificate in one call: the refresh of linear_contraction.matrix_constraint.MatrixCertifier on its
// common path (Weyl from the last proven weight, the block Krylov estimate of σ_max, one Cholesky factorisation of
// s·I − AᵀA with its rounding margin, the wider retry), with the same arithmetic and margins as the Python route, whose
// notebook carries the proofs. It exists for the ~40 small tensor operations and the allocations that route pays per
// training step: here the float64 copy, the scaled matrix, the Gram matrix and the factorisation live in buffers the
// caller keeps, and the margins are plain loops. Where the common path does not settle (a third shift would be needed),
// it says so and the Python route decides.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

extern "C" void dpotrf_(char* uplo, int* n, double* a, int* lda, int* info) __attribute__((weak));
extern "C" void dpotrs_(char* uplo, int* n, int* nrhs, double* a, int* lda, double* b, int* ldb, int* info) __attribute__((weak));

namespace linear_contraction {

namespace dense {

constexpr double kU = 1.1102230246251565e-16;  // 2^-53, float64's unit roundoff
inline double gam(double k) { return k * kU / (1 - k * kU); }

// An orthonormal basis of B's columns by CholeskyQR2 (two passes of B·R⁻¹, R the Cholesky factor of BᵀB: matrix
// products instead of Householder's column-by-column work), or Householder QR where a factorisation fails (B too
// ill-conditioned). Only the estimate depends on it; the certificate proves its bound independently.
inline at::Tensor orthonormal(const at::Tensor& B) {  // in float64 whatever B's precision (a float32 Krylov basis is
  at::Tensor Q = B.to(at::kDouble);                     // too ill-conditioned for CholeskyQR2 in float32)
  for (int pass = 0; pass < 2; ++pass) {
    auto [R, info] = at::linalg_cholesky_ex(at::mm(Q.t(), Q), /*upper=*/true);
    if (info.item<int>() != 0) return std::get<0>(at::linalg_qr(B.to(at::kDouble))).to(B.scalar_type());
    Q = at::linalg_solve_triangular(R, Q, /*upper=*/true, /*left=*/false);
  }
  return Q.to(B.scalar_type());
}

// The top eigenpair of a symmetric positive semidefinite operator by restarted block Krylov with Rayleigh–Ritz, as
// linear_contraction.spectral.block_top: (λ, the next warm block with the top Ritz vector last, relative residual).
template <typename Op>
std::tuple<double, at::Tensor, double> block_top(const Op& op, at::Tensor V, double tol, double tol_value, int64_t restarts,
                                                 int64_t depth = 3) {
  const int64_t n = V.size(0), b = V.size(1);
  double lam = 0, res = 0;
  for (int64_t r = 0; r < restarts; ++r) {
    std::vector<at::Tensor> blocks{V};
    at::Tensor X = V;
    for (int64_t k = 0; k < depth; ++k) {
      if (b * int64_t(blocks.size()) >= n) break;
      X = op(X);
      X = X / at::linalg_vector_norm(X, 2, at::IntArrayRef{0}, true).clamp_min(1e-300);
      blocks.push_back(X);
    }
    at::Tensor Q = orthonormal(at::cat(blocks, 1));
    at::Tensor GQ = op(Q);
    auto [lams, Y] = at::linalg_eigh(at::mm(Q.t(), GQ));
    const int64_t q = lams.size(0);
    at::Tensor Yb = Y.narrow(1, q - b, b);
    V = at::mm(Q, Yb);
    const at::Tensor l64 = lams.to(at::kDouble);
    const double* pl = l64.data_ptr<double>();
    lam = pl[q - 1];
    res = at::linalg_vector_norm(at::mv(GQ, Yb.select(1, b - 1)) - lam * V.select(1, b - 1)).item<double>();
    if (lam <= 0 || res <= tol * lam) break;
    const double gap = q > 1 ? lam - pl[q - 2] : lam;  // Kato–Temple: the Ritz value's error is about res²/gap
    if (res * res <= tol_value * lam * std::max(gap, 1e-300)) break;
  }
  return {std::max(lam, 0.0), V, lam > 0 ? res / lam : 0.0};
}

// Try to prove λ_max(G) ≤ bound² by a Cholesky factorisation of s·I − G (G = fl(AᵀA), A with `rows` rows and ‖A‖_F² ≤
// fro2): the margin of linear_contraction.certify.gram_shift_certificates. Returns +inf where the factorisation fails.
// In-place Cholesky of the symmetric n×n row-major M (its lower triangle, read as column-major upper) by LAPACK's dpotrf
// where torch exports it (a weak symbol: absent, ATen's cholesky_ex, which copies and clears the other triangle).
inline bool factorise(at::Tensor& M, at::Tensor& L) {
  int n = int(M.size(0)), info = 0;
  char uplo = 'U';
  if (dpotrf_ != nullptr && dpotrs_ != nullptr) { dpotrf_(&uplo, &n, M.data_ptr<double>(), &n, &info); return info == 0; }
  at::Tensor code = at::empty({}, at::TensorOptions().dtype(at::kInt));
  at::linalg_cholesky_ex_out(L, code, M, false, false);
  return code.item<int>() == 0;
}

// x ← (s·I − G)⁻¹x with the factor that `factorise` left in M (dpotrs) or L (ATen).
inline void solve(at::Tensor& M, const at::Tensor& L, at::Tensor& x) {
  if (dpotrf_ != nullptr && dpotrs_ != nullptr) {
    int n = int(M.size(0)), one = 1, info = 0;
    char uplo = 'U';
    dpotrs_(&uplo, &n, &one, M.data_ptr<double>(), &n, x.data_ptr<double>(), &n, &info);
  } else x.copy_(at::cholesky_solve(x.unsqueeze(1), L).squeeze(1));
}

inline double shift_bound(const at::Tensor& G, at::Tensor& M, at::Tensor& L, double s, int64_t rows, double fro2) {
  const int64_t n = G.size(0);
  const double* g = G.data_ptr<double>();
  double* mp = M.data_ptr<double>();
  double sum_d = 0, max_d = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) mp[i * n + j] = -g[i * n + j];
    const double d = s - g[i * n + i];  // rounded once, like the Python route's in-place add
    mp[i * n + i] = d;
    sum_d += d; max_d = std::max(max_d, std::abs(d));
  }
  sum_d *= 1 + (n + 2) * kU;  // the sum's own rounding, upward (the margin only needs an upper value)
  if (!factorise(M, L)) return std::numeric_limits<double>::infinity();
  const double gn = gam(n + 1);
  const double margin = gn / (1 - gn) * sum_d + 2 * kU * max_d + gam(rows) * fro2 + double(n + 1) * (n + 1) * std::ldexp(1.0, -1000)
                        + double(rows) * n * std::ldexp(1.0, -1014);  // the unscaled Gram's underflow (see below)
  return (s + 2 * margin) * (1 + 8 * kU);
}

}  // namespace dense

constexpr int64_t kSmallGram = 80;  // Gram matrices up to this order take the exact eigenvalue instead of block Krylov

// One refresh. W (m, n) the weight (any floating dtype, CPU); W64 (m, n) float64 buffer that receives W (it becomes the
// next anchor where a factorisation proves the bound); anchor (m, n) float64, the last proven weight, with its bound
// beta_a (pass an empty tensor where there is none); G, M, L (min, min) float64 buffers; V (min, b)
// float64 warm block. Returns (info, u, v, V): info = [route, scale, active, σ̂, bound, …] with route 0 = Weyl settled it
// (no vectors), 1 = one factorisation, 2 = the wider retry, 3 = Weyl after the estimate, −1 = not settled here (the
// Python route decides), −2 = W is not finite (the caller names the entries).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> dense_certificate(
    const at::Tensor& W, at::Tensor W64, const at::Tensor& anchor, double beta_a, at::Tensor G, at::Tensor M,
    at::Tensor L, const at::Tensor& V0, double c, double slack, bool clip, double tol, double tol_value, int64_t restarts) {
  TORCH_CHECK(W.dim() == 2 && W.device().is_cpu(), "linear_contraction dense_certificate: expected a CPU matrix, got shape ",
              W.sizes(), " on ", W.device(), ".");
  using dense::kU;
  const int64_t m = W.size(0), n = W.size(1), rows = std::max(m, n), k = std::min(m, n);
  auto ok_buf = [](const at::Tensor& t, std::vector<int64_t> shape) {
    return t.scalar_type() == at::kDouble && t.is_contiguous() && t.device().is_cpu() && t.sizes().vec() == shape;
  };
  TORCH_CHECK(ok_buf(W64, {m, n}) && ok_buf(G, {k, k}) && ok_buf(M, {k, k}) && ok_buf(L, {k, k}) &&
              V0.scalar_type() == at::kDouble && V0.dim() == 2 && V0.size(0) == k,
              "linear_contraction dense_certificate: the buffers do not match the weight of shape ", W.sizes(), ".");
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  const double inf = std::numeric_limits<double>::infinity();
  W64.copy_(W);
  const double amax = at::linalg_vector_norm(W64, std::numeric_limits<double>::infinity()).item<double>();
  if (!std::isfinite(amax)) return {at::tensor({-2.0, 1.0, 0.0, 0.0, 0.0}, f64), at::empty({0}, f64), at::empty({0}, f64), V0};
  double weyl = inf;
  const bool anchored = anchor.defined() && anchor.numel() == m * n && std::isfinite(beta_a);
  if (anchored) {  // Weyl: σ_max(W) ≤ σ_max(W_a) + ‖W − W_a‖_F ≤ β_a + d
    const double* w = W64.data_ptr<double>();
    const double* a = anchor.data_ptr<double>();
    double p[4] = {0, 0, 0, 0};  // four partial sums (any order obeys the same γ bound)
    int64_t i = 0;
    for (; i + 4 <= m * n; i += 4) for (int j = 0; j < 4; ++j) { const double x = w[i + j] - a[i + j]; p[j] += x * x; }
    for (; i < m * n; ++i) { const double x = w[i] - a[i]; p[0] += x * x; }
    const double d = std::sqrt(p[0] + p[1] + p[2] + p[3]) * (1 + (m * n + 4) * kU);
    weyl = (beta_a + d) * (1 + 4 * kU);
  }
  if (amax == 0 || (clip && weyl <= c))  // zero, or well inside the ball: the weight is used as it is
    return {at::tensor({0.0, 1.0, 0.0, 0.0, amax == 0 ? 0.0 : weyl}, f64), at::empty({0}, f64), at::empty({0}, f64), V0};
  const int e = std::ilogb(amax) + 1;  // frexp's exponent: the scaled entries A·2^-e lie below 1
  // G is formed from the unscaled A and then scaled by 4^-e. Where no product or scaled entry leaves float64's normal
  // range this equals fl((A·2^-e)ᵀ(A·2^-e)) bit for bit; where some do (tiny entries), the two differ by at most
  // rows·2^-1014 per entry for |e| ≤ 30, so by rows·n·2^-1014 in norm: a term of the margin. Outside that range the
  // Python route (which scales A first) runs.
  if (e < -30 || e > 30)
    return {at::tensor({-1.0, 1.0, 0.0, 0.0, inf}, f64), at::empty({0}, f64), at::empty({0}, f64), V0};
  const double down2 = std::ldexp(1.0, -2 * e), up = std::ldexp(1.0, e);
  // A = W (m ≥ n) or Wᵀ: the Gram matrix of the smaller side; every margin below is that of the scaled matrix, entries
  // below 1.
  const at::Tensor A = m >= n ? W64 : W64.t();
  const bool near = anchored && weyl <= (1 + 1.5 * slack) * beta_a;  // Weyl may settle it: no Gram matrix unless needed
  bool have_G = false;
  auto gram = [&]() { if (!have_G) { at::mm_out(G, A.t(), A); G.mul_(down2); have_G = true; } };
  if (!near) gram();
  auto op = [&](const at::Tensor& X) { return have_G ? at::mm(G, X) : at::mm(A.t(), at::mm(A, X)).mul_(down2); };
  // the estimate: on small Gram matrices the exact top eigenvalue (LAPACK, no vectors) costs less than block Krylov and
  // never needs the wider shift; the vector then comes from the certificate's own factorisation (below)
  const bool small = !near && k <= kSmallGram;
  const bool single = !near && W.scalar_type() == at::kFloat;  // the weight's own precision bounds what the estimate needs
  double lam;
  at::Tensor V;
  if (small) {
    at::Tensor ev = at::linalg_eigvalsh(G);
    lam = std::max(ev.data_ptr<double>()[k - 1], 0.0);
    V = V0;
  } else if (single) {  // float32 weights: the estimate needs ~10⁻⁶, so its products run in float32 (half the traffic)
    const at::Tensor G32 = G.to(at::kFloat);
    auto op32 = [&](const at::Tensor& X) { return at::mm(G32, X); };
    std::tie(lam, V, std::ignore) = dense::block_top(op32, V0.to(at::kFloat), tol, tol_value, restarts);
    V = V.to(at::kDouble);
  } else std::tie(lam, V, std::ignore) = dense::block_top(op, V0, tol, tol_value, restarts);
  double sigma = std::sqrt(lam) * up, beta = sigma * (1 + slack), bound = weyl;
  double route = 3;
  if (small && weyl <= beta)  // Weyl settles it, but the derivative still needs the top vector
    std::tie(std::ignore, V, std::ignore) = dense::block_top(op, V0, tol, tol_value, restarts);
  if (weyl > beta) {
    gram();
    // ‖A·2^-e‖_F² ≤ Σ_i G_ii/(1 − γ_rows) (each diagonal entry is one rounded dot product), its sum rounded upward
    const double* g = G.data_ptr<double>();
    double fro2 = 0;
    for (int64_t i = 0; i < k; ++i) fro2 += g[i * k + i];
    fro2 = fro2 / (1 - dense::gam(rows)) * (1 + (k + 2) * kU);
    double b2 = dense::shift_bound(G, M, L, lam * (1 + slack / 2) * (1 + slack / 2), rows, fro2);
    route = 1;
    if (!std::isfinite(b2)) {  // σ̂ a little low (the top of a tight cluster not yet resolved): a wider shift, still tight
      beta = sigma * (1 + 2 * slack);
      b2 = dense::shift_bound(G, M, L, lam * (1 + 1.8 * slack) * (1 + 1.8 * slack), rows, fro2);
      route = 2;
    }
    bound = std::isfinite(b2) ? std::sqrt(b2) * up * (1 + 4 * kU) : inf;
    if (!(bound <= beta)) return {at::tensor({-1.0, 1.0, 0.0, sigma, bound}, f64), at::empty({0}, f64), at::empty({0}, f64), V};
    if (small) {  // inverse iteration with s·I − G, s just above λ_max: (s − λ₁)/(s − λ₂) per step, from the warm vector
      // one step past the tolerance: each step gains that factor (tiny for s this close to λ₁), so the vector the
      // derivative uses is accurate well beyond the residual asked for, as block Krylov's Rayleigh–Ritz vector is
      at::Tensor x = V.select(1, V.size(1) - 1).clone();
      bool done = false;
      for (int it = 0; it < 30; ++it) {
        dense::solve(M, L, x);
        x.div_(at::linalg_vector_norm(x).clamp_min(1e-300));
        if (done) break;
        at::Tensor Gx = at::mv(G, x);
        const double rho = at::dot(x, Gx).item<double>();
        done = at::linalg_vector_norm(Gx - rho * x).item<double>() <= tol * std::max(lam, 1e-300);
      }
      V = V.clone();
      V.select(1, V.size(1) - 1).copy_(x);
    }
  }
  double scale = c / beta, active = 1;
  if (clip && !(beta > c)) { scale = 1; active = 0; }
  at::Tensor v = V.select(1, V.size(1) - 1).contiguous();
  at::Tensor Av = at::mv(m >= n ? W64 : W64.t(), v);
  at::Tensor other = Av / at::linalg_vector_norm(Av).clamp_min(1e-300);  // the singular vector of the other side
  at::Tensor out = at::tensor({route, scale, active, sigma, bound}, f64);
  return m >= n ? std::make_tuple(out, other, v, V) : std::make_tuple(out, v, other, V);
}

}  // namespace linear_contraction
