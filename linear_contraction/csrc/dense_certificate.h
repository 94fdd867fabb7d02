// The dense layer's certificate in one call: the refresh of linear_contraction.matrix_constraint.MatrixCertifier on its
// common path (Weyl from the last proven weight, an estimate of σ_max, one Cholesky factorisation of s·I − AᵀA with its
// rounding margin, the wider retry), with the same margins as the Python route, whose notebook carries the proofs. It
// exists for the ~40 small tensor operations and the allocations that route pays per training step: here the float64
// copy, the scaled matrix, the Gram matrix and the factorisation live in buffers the caller keeps, the margins are plain
// loops, and the estimate is Lanczos in plain loops and BLAS-2 calls (block Krylov where that does not converge). Where
// the common path does not settle (a third shift would be needed), it says so and the Python route decides.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

extern "C" void dpotrf_(char* uplo, int* n, double* a, int* lda, int* info) __attribute__((weak));
extern "C" void sgemv_(char* trans, int* m, int* n, float* alpha, const float* a, int* lda, const float* x, int* incx,
                       float* beta, float* y, int* incy) __attribute__((weak));
extern "C" void dgemv_(char* trans, int* m, int* n, double* alpha, const double* a, int* lda, const double* x, int* incx,
                       double* beta, double* y, int* incy) __attribute__((weak));

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

// One pass over the weight's n entries: their float64 copy (exact), max |w_i|, whether all are finite, and — with an
// anchor a — Σ (w_i − a_i)² in four partial sums (any order obeys the same γ bound): a copy, a norm and a difference in
// one read of the weight.
template <bool Anchored, typename T>
void copy_scan(const T* w, double* out, const double* a, int64_t n, double& amax, bool& finite, double& d2) {
  double mx[4] = {0, 0, 0, 0}, z[4] = {0, 0, 0, 0}, p[4] = {0, 0, 0, 0};
  auto one = [&](int64_t i, int j) {
    const double x = static_cast<double>(w[i]);
    out[i] = x;
    mx[j] = std::max(mx[j], std::abs(x));
    z[j] += x * 0.0;  // NaN once an entry is ±inf or NaN (std::max above skips NaN)
    if constexpr (Anchored) { const double y = x - a[i]; p[j] += y * y; }
  };
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) for (int j = 0; j < 4; ++j) one(i + j, j);
  for (; i < n; ++i) one(i, 0);
  amax = std::max(std::max(mx[0], mx[1]), std::max(mx[2], mx[3]));
  finite = std::isfinite(z[0] + z[1] + z[2] + z[3]);
  d2 = p[0] + p[1] + p[2] + p[3];
}

// y ← α·op(X)·v + β·y for X with `cols` columns of length `len`, stored one column after another (column-major, as
// Fortran's BLAS reads it): op(X) = X (trans false: y has len entries) or Xᵀ (true: cols entries). BLAS's dgemv where torch
// exports it (a weak symbol), plain loops otherwise.
inline void gemv(bool trans, int64_t len, int64_t cols, double alpha, const double* X, const double* v, double beta, double* y) {
  if (dgemv_ != nullptr) {
    char t = trans ? 'T' : 'N';
    int m = int(len), n = int(cols), one = 1;
    dgemv_(&t, &m, &n, &alpha, X, &m, v, &one, &beta, y, &one);
    return;
  }
  if (trans) {
    for (int64_t c = 0; c < cols; ++c) {
      double acc = 0;
      for (int64_t r = 0; r < len; ++r) acc += X[c * len + r] * v[r];
      y[c] = alpha * acc + (beta == 0 ? 0.0 : beta * y[c]);
    }
  } else {
    for (int64_t r = 0; r < len; ++r) y[r] = beta == 0 ? 0.0 : beta * y[r];
    for (int64_t c = 0; c < cols; ++c) for (int64_t r = 0; r < len; ++r) y[r] += alpha * X[c * len + r] * v[c];
  }
}

// w = G q for the symmetric k×k G, in float64 or through a float32 copy of G (half the memory traffic of these
// memory-bound passes; for float32 weights, whose estimate needs ~10⁻⁶, far above float32's rounding of G).
struct SymMatVec {
  const double* G = nullptr;
  const float* G32 = nullptr;
  int64_t k = 0;
  mutable std::vector<float> q32, w32;
  void operator()(const double* q, double* w) const {
    if (G32 == nullptr) { gemv(false, k, k, 1.0, G, q, 0.0, w); return; }
    q32.resize(k); w32.resize(k);
    for (int64_t i = 0; i < k; ++i) q32[i] = float(q[i]);
    if (sgemv_ != nullptr) {
      char t = 'N';
      int m = int(k), one = 1;
      float alpha = 1, beta = 0;
      sgemv_(&t, &m, &m, &alpha, G32, &m, q32.data(), &one, &beta, w32.data(), &one);
    } else {
      for (int64_t r = 0; r < k; ++r) {
        float acc = 0;
        for (int64_t c = 0; c < k; ++c) acc += G32[r * k + c] * q32[c];
        w32[r] = acc;
      }
    }
    for (int64_t i = 0; i < k; ++i) w[i] = w32[i];
  }
};

// The number of eigenvalues of the symmetric tridiagonal T (diagonal a[0..p), off-diagonal b[0..p−1)) below mu: that of
// negative pivots of T − μI (Sturm).
inline int count_below(const double* a, const double* b, int p, double mu) {
  int cnt = 0;
  double d = 1;
  for (int i = 0; i < p; ++i) {
    d = a[i] - mu - (i > 0 ? b[i - 1] * b[i - 1] / d : 0.0);
    if (d == 0) d = -1e-300;
    cnt += d < 0;
  }
  return cnt;
}

// Gershgorin's interval [lo, hi] of the symmetric tridiagonal T: it holds every eigenvalue.
inline void gershgorin(const double* a, const double* b, int p, double& lo, double& hi) {
  lo = hi = a[0];
  for (int i = 0; i < p; ++i) {
    const double rad = (i > 0 ? std::abs(b[i - 1]) : 0.0) + (i + 1 < p ? std::abs(b[i]) : 0.0);
    lo = std::min(lo, a[i] - rad); hi = std::max(hi, a[i] + rad);
  }
}

// The largest eigenvalue of the symmetric tridiagonal T (diagonal a[0..p), off-diagonal b[0..p−1)) at or below rank r
// (r = 0: the largest, 1: the second) to relative accuracy rtol by bisection on Sturm counts: the number of negative
// pivots of T − μI is the number of eigenvalues below μ.
// [lo0, hi0] a bracket known to hold it (by default Gershgorin's).
inline double tridiag_eig(const double* a, const double* b, int p, int r, double rtol, double lo0 = 1, double hi0 = 0) {
  double lo, hi;
  gershgorin(a, b, p, lo, hi);
  if (lo0 <= hi0) { lo = std::max(lo, lo0); hi = std::min(hi, hi0); }
  auto below = [&](double mu) { return count_below(a, b, p, mu); };
  for (int it = 0; it < 200 && hi - lo > rtol * std::max(std::abs(lo), std::abs(hi)); ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (below(mid) >= p - r) hi = mid; else lo = mid;
  }
  return hi;
}

// The largest eigenvalue of T (as above) by Laguerre's iteration from above Gershgorin's bound. For a matrix with real
// eigenvalues λ_j, Laguerre's iterates from above the largest decrease monotonically to it (cubically near it); each
// needs G = Σ 1/(μ − λ_j) and H = Σ 1/(μ − λ_j)², the first two derivatives of log det(μI − T) = Σ log d_i, d_i the
// pivots of μI − T, whose recurrence d_i = μ − a_i − b_{i−1}²/d_{i−1} is differentiated twice alongside: one pass of O(p)
// per iterate where bisection takes ~45. Every pivot positive certifies that μ lies above λ_max, so the result is an
// upper value (within rtol); where a pivot is not positive (rounding next to a cluster) bisection decides.
inline double tridiag_top(const double* a, const double* b, int p, double rtol) {
  double lo, hi;
  gershgorin(a, b, p, lo, hi);
  double mu = hi + 1e-12 * std::abs(hi) + 1e-300, prev = mu;
  for (int it = 0; it < 40; ++it) {
    double d = mu - a[0], dp = 1, dpp = 0, inv = 1 / d, G = inv, H = inv * inv;  // one division per pivot
    bool above = d > 0;
    for (int i = 1; i < p && above; ++i) {
      const double r = b[i - 1] * b[i - 1] * inv, g = dp * inv;
      dpp = r * (dpp * inv - 2 * g * g);
      dp = 1 + r * g;
      d = mu - a[i] - r;
      above = d > 0;
      inv = 1 / d;
      const double gi = dp * inv;
      G += gi;
      H += gi * gi - dpp * inv;
    }
    if (!above || !(G > 0)) {  // μ reached λ_max within rounding: μ(1 + rtol) if it lies above, else bisection in [μ, prev]
      if (it == 0) return tridiag_eig(a, b, p, 0, rtol);
      const double up = mu + rtol * std::abs(mu);
      return up < prev && count_below(a, b, p, up) == p ? up : tridiag_eig(a, b, p, 0, rtol, mu, prev);
    }
    const double step = double(p) / (G + std::sqrt(std::max(0.0, (p - 1) * (p * H - G * G))));
    if (!(step > rtol * std::abs(mu))) return mu;  // μ is above λ_max and the next iterate moves it by less than rtol
    prev = mu;
    mu -= step;
  }
  return tridiag_eig(a, b, p, 0, rtol);
}

// The top eigenpair of the symmetric k×k G (applied by op) by Lanczos with full reorthogonalisation from x0, in plain
// loops: a step is one memory-bound pass over G and two BLAS-2 calls, with none of the per-call overhead of the tensor
// operations block Krylov takes (a few microseconds per step at k = 64, tens at k = 512).
// Stops as block_top does (relative residual ≤ tol, or Kato–Temple: res² ≤ tol_value·θ·gap with gap the distance to the
// second Ritz value), or when the Krylov space is exhausted (then the pair is exact to rounding). The residual of the Ritz
// pair is β_j·|s_j| (s the top eigenvector of the tridiagonal T). Returns false where it did not converge in max_steps.
inline bool lanczos_top(const SymMatVec& op, int64_t k, const double* x0, double tol, double tol_value, int max_steps,
                        double& theta, double* x) {
  const int pmax = int(std::min<int64_t>(max_steps, k));
  std::vector<double> Q(size_t(pmax) * k), a(pmax), b(pmax), w(k), s(pmax), z(pmax), h(pmax);
  double nrm = 0;
  for (int64_t i = 0; i < k; ++i) nrm += x0[i] * x0[i];
  nrm = std::sqrt(nrm);
  if (!(nrm > 0)) return false;
  for (int64_t i = 0; i < k; ++i) Q[i] = x0[i] / nrm;
  bool conv = false;
  int p = 0;
  theta = 0;
  for (int j = 0; j < pmax; ++j) {
    const double* q = &Q[size_t(j) * k];
    op(q, w.data());  // w = G q
    double al = 0;
    for (int64_t i = 0; i < k; ++i) al += q[i] * w[i];
    a[j] = al;
    for (int pass = 0; pass < 2; ++pass) {  // full reorthogonalisation, classical Gram–Schmidt twice (it implies the recurrence)
      gemv(true, k, j + 1, 1.0, Q.data(), w.data(), 0.0, h.data());   // h = Q_pᵀ w
      gemv(false, k, j + 1, -1.0, Q.data(), h.data(), 1.0, w.data());  // w −= Q_p h
    }
    double be = 0;
    for (int64_t i = 0; i < k; ++i) be += w[i] * w[i];
    be = std::sqrt(be);
    b[j] = be;
    p = j + 1;
    if (p < k && be > 1e-14 * std::abs(al) && j + 1 < pmax && (p < 6 || p % std::max(3, p / 8))) {  // the Ritz pair from the sixth step, every third (every p/8th later on)
      double* qn = &Q[size_t(j + 1) * k];
      for (int64_t i = 0; i < k; ++i) qn[i] = w[i] / be;
      continue;
    }
    // the top Ritz value and vector of T_p: Laguerre (bisection where it stops short), then inverse iteration with (θ(1 + 1e-12) + tiny)I − T, positive
    // definite, solved by the stable tridiagonal LDLᵀ recurrence
    theta = tridiag_top(a.data(), b.data(), p, 1e-13);
    const double sh = theta + 1e-12 * std::abs(theta) + 1e-300;
    for (int i = 0; i < p; ++i) s[i] = 1.0;
    for (int it = 0; it < 3; ++it) {
      double dprev = 0;
      for (int i = 0; i < p; ++i) {  // forward: L D Lᵀ of sh·I − T, solving L y = s in place (z holds the pivots)
        const double l = i > 0 ? -b[i - 1] / dprev : 0.0;
        z[i] = sh - a[i] - (i > 0 ? l * (-b[i - 1]) : 0.0);
        if (!(z[i] > 0)) z[i] = 1e-300;
        if (i > 0) s[i] -= l * s[i - 1];
        dprev = z[i];
      }
      for (int i = p - 1; i >= 0; --i) {  // back: D Lᵀ x = y
        s[i] /= z[i];
        if (i + 1 < p) s[i] -= (-b[i] / z[i]) * s[i + 1];
      }
      double ns = 0;
      for (int i = 0; i < p; ++i) ns += s[i] * s[i];
      ns = std::sqrt(ns);
      for (int i = 0; i < p; ++i) s[i] /= ns;
    }
    const double res = be * std::abs(s[p - 1]);
    // Kato–Temple's gap to the second Ritz value, by bisection, only where it could decide: the gap is at most θ − λ_min(T)
    double lo, hi;
    gershgorin(a.data(), b.data(), p, lo, hi);
    const double gap = tol_value <= 0 || res * res > tol_value * theta * (theta - std::min(lo, 0.0)) ? 0.0
                      : p > 1 ? theta - tridiag_eig(a.data(), b.data(), p, 1, 1e-6) : theta;
    conv = theta > 0 && (res <= tol * theta || res * res <= tol_value * theta * std::max(gap, 1e-300) || p == k ||
                         be <= 1e-14 * theta);
    if (conv || j + 1 == pmax) break;
    double* qn = &Q[size_t(j + 1) * k];
    for (int64_t i = 0; i < k; ++i) qn[i] = w[i] / be;
  }
  for (int64_t i = 0; i < k; ++i) x[i] = 0;  // x = Q_p s
  for (int j = 0; j < p; ++j) {
    const double* q = &Q[size_t(j) * k];
    for (int64_t i = 0; i < k; ++i) x[i] += s[j] * q[i];
  }
  return conv;
}

// Try to prove λ_max(G) ≤ bound² by a Cholesky factorisation of s·I − G (G = fl(AᵀA), A with `rows` rows and ‖A‖_F² ≤
// fro2): the margin of linear_contraction.certify.gram_shift_certificates. Returns +inf where the factorisation fails.
// In-place Cholesky of the symmetric n×n row-major M (its lower triangle, read as column-major upper) by LAPACK's dpotrf
// where torch exports it (a weak symbol: absent, ATen's cholesky_ex, which copies and clears the other triangle).
inline bool factorise(at::Tensor& M, at::Tensor& L) {
  int n = int(M.size(0)), info = 0;
  char uplo = 'U';
  if (dpotrf_ != nullptr) { dpotrf_(&uplo, &n, M.data_ptr<double>(), &n, &info); return info == 0; }
  at::Tensor code = at::empty({}, at::TensorOptions().dtype(at::kInt));
  at::linalg_cholesky_ex_out(L, code, M, false, false);
  return code.item<int>() == 0;
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

constexpr int kLanczosSteps = 160;  // the most Lanczos steps before block Krylov takes over (Gram matrices up to this order: exact)

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
  const bool anchored = anchor.defined() && anchor.numel() == m * n && std::isfinite(beta_a);
  const at::Tensor Wc = W.contiguous();
  double amax = 0, d2 = 0;
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, W.scalar_type(), "dense_certificate", [&] {
    const scalar_t* w = Wc.data_ptr<scalar_t>();
    double* out = W64.data_ptr<double>();
    const double* a = anchored ? anchor.data_ptr<double>() : nullptr;
    // in chunks over torch's threads (each chunk's partial results combined below; the sum's order does not matter)
    const int64_t N = m * n, chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), N / 32768));
    std::vector<double> mx(chunks, 0.0), dd(chunks, 0.0);
    std::vector<char> fin(chunks, 1);
    at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b = N * c / chunks, e = N * (c + 1) / chunks;
        bool f = true;
        if (anchored) dense::copy_scan<true>(w + b, out + b, a + b, e - b, mx[c], f, dd[c]);
        else dense::copy_scan<false>(w + b, out + b, nullptr, e - b, mx[c], f, dd[c]);
        fin[c] = f;
      }
    });
    for (int64_t c = 0; c < chunks; ++c) { amax = std::max(amax, mx[c]); d2 += dd[c]; finite = finite && fin[c]; }
  });
  if (!finite || !std::isfinite(amax))
    return {at::tensor({-2.0, 1.0, 0.0, 0.0, 0.0}, f64), at::empty({0}, f64), at::empty({0}, f64), V0};
  double weyl = inf;
  if (anchored) {  // Weyl: σ_max(W) ≤ σ_max(W_a) + ‖W − W_a‖_F ≤ β_a + d
    const double d = std::sqrt(d2) * (1 + (m * n + 4) * kU);
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
  // the estimate: Lanczos on G (plain loops and BLAS-2: no tensor operations per step), started from the
  // warm top vector with a little of the rest of the warm block mixed in (a vector that crossed the top of a cluster
  // since the last step is then in the start); block Krylov where Lanczos did not converge, and where G was not formed
  double lam = 0;
  at::Tensor V, G32;  // G32: the float32 copy of G that float32 weights' estimates read
  bool lanczos = false;
  if (!near && W.scalar_type() == at::kFloat) G32 = G.to(at::kFloat);
  if (!near) {
    const at::Tensor V0c = V0.contiguous();
    const double* v0 = V0c.data_ptr<double>();
    const int64_t b = V0c.size(1);
    std::vector<double> x0(k);
    for (int64_t i = 0; i < k; ++i) {
      double acc = v0[i * b + b - 1];
      for (int64_t j = 0; j + 1 < b; ++j) acc += 0.05 * v0[i * b + j];
      x0[i] = acc;
    }
    at::Tensor x = at::empty({k}, f64);
    dense::SymMatVec op_l;
    op_l.G = G.data_ptr<double>();
    op_l.k = k;
    if (G32.defined()) op_l.G32 = G32.data_ptr<float>();
    lanczos = dense::lanczos_top(op_l, k, x0.data(), tol, tol_value, kLanczosSteps, lam, x.data_ptr<double>());
    if (lanczos) {
      lam = std::max(lam, 0.0);
      V = V0.clone();
      V.select(1, b - 1).copy_(x);
    }
  }
  if (!lanczos) {
    double rel_res = 0;
    if (G32.defined()) {  // float32 weights: the estimate needs ~10⁻⁶, so its products run in float32
      auto op32 = [&](const at::Tensor& X) { return at::mm(G32, X); };
      std::tie(lam, V, std::ignore) = dense::block_top(op32, V0.to(at::kFloat), tol, tol_value, restarts);
      V = V.to(at::kDouble);
    } else std::tie(lam, V, rel_res) = dense::block_top(op, V0, tol, tol_value, restarts);
    // float64 weights promise an exact derivative: a top pair left unresolved (a cluster tighter than the restarts
    // separate) goes to the Python route, which refines it with the certified shift or reports it
    if (W.scalar_type() == at::kDouble && tol_value <= 0 && rel_res > tol)
      return {at::tensor({-1.0, 1.0, 0.0, 0.0, inf}, f64), at::empty({0}, f64), at::empty({0}, f64), V};
  }
  double sigma = std::sqrt(lam) * up, beta = sigma * (1 + slack), bound = weyl;
  double route = 3;
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
  }
  double scale = c / beta, active = 1;
  if (clip && !(beta > c)) { scale = 1; active = 0; }
  at::Tensor v = V.select(1, V.size(1) - 1).contiguous();
  // the singular vector of the other side, A v/‖A v‖: from the float32 weight where it is one (the vectors are returned
  // in the weight's precision; half the bytes of the float64 copy)
  at::Tensor Av = W.scalar_type() == at::kFloat ? at::mv(m >= n ? W : W.t(), v.to(at::kFloat)).to(at::kDouble)
                                                : at::mv(m >= n ? W64 : W64.t(), v);
  at::Tensor other = Av / at::linalg_vector_norm(Av).clamp_min(1e-300);
  at::Tensor out = at::tensor({route, scale, active, sigma, bound}, f64);
  return m >= n ? std::make_tuple(out, other, v, V) : std::make_tuple(out, v, other, V);
}

}  // namespace linear_contraction
