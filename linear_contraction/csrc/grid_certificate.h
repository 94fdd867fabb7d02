// A proven bound on the largest singular value of a convolution's symbol over a small circular grid, in one call: the
// Gram coefficients of the kernel, the Gram symbol at every (group, frequency), warm power steps, the exact top pair at the
// likeliest maximiser, and one Cholesky factorisation of s·I − H(ω) per point with its rounding margin. The same
// arithmetic as the Python route of linear_contraction.conv_norm (`_grid_bound_all`), whose comments and notebook carry
// the proofs; here without the ~150 small tensor operations that route costs per call. Header-only: plain loops on CPU
// memory, ATen for the two matrix products (coefficients, symbol) and the small Hermitian eigensolves.
#pragma once
#include <ATen/ATen.h>
#include "batched_cholesky.h"
#include <c10/util/Exception.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

namespace linear_contraction {

constexpr double kU64 = 1.1102230246251565e-16;  // 2^-53
constexpr double kU32 = 5.9604644775390625e-08;  // 2^-24

inline double gamma_k(double k, double u) { return k * u / (1 - k * u); }

struct GridProblem {
  int64_t g, m, n, r, nQ, nK, P, d;
  bool wide;
  std::vector<int64_t> Q;
  std::vector<double> C;  // (g, nK, r, r) Gram coefficients
  at::Tensor H;  // (g, P, r², 2) the Gram symbol H(ω) in float64, (real, imaginary) interleaved
  const double* Hp(int64_t i) const { return H.data_ptr<double>() + i * r * r * 2; }  // point i's matrix
  double S = 0, coef_err = 0, gram_err = 0;
};

// The Gram coefficients C_k (KᴴK when n ≤ m, else KKᴴ) and the symbol H(ω) = Σ_k C_k e^{-iω·k} at every point.
inline GridProblem grid_problem(const at::Tensor& Wp, const at::Tensor& omega, double u) {
  GridProblem pb;
  pb.g = Wp.size(0); pb.m = Wp.size(1); pb.n = Wp.size(2); pb.d = Wp.dim() - 3;
  pb.wide = pb.n <= pb.m; pb.r = pb.wide ? pb.n : pb.m;
  pb.nQ = 1; pb.nK = 1;
  for (int64_t j = 0; j < pb.d; ++j) { pb.Q.push_back(Wp.size(3 + j)); pb.nQ *= pb.Q[j]; pb.nK *= 2 * pb.Q[j] - 1; }
  pb.P = omega.size(0);
  const int64_t g = pb.g, m = pb.m, n = pb.n, r = pb.r, nQ = pb.nQ, nK = pb.nK, P = pb.P, d = pb.d;
  const double* W = Wp.data_ptr<double>();  // (g, m, n, nQ) row-major
  auto w = [&](int64_t gi, int64_t i, int64_t j, int64_t q) { return W[((gi * m + i) * n + j) * nQ + q]; };
  std::vector<int64_t> qv(nQ * d);  // tap offsets, row-major over Q
  for (int64_t q = 0; q < nQ; ++q) { int64_t rest = q; for (int64_t j = d - 1; j >= 0; --j) { qv[q * d + j] = rest % pb.Q[j]; rest /= pb.Q[j]; } }
  for (int64_t gi = 0; gi < g; ++gi) {  // S = max_g Σ_q ‖W_q‖_F
    double s = 0;
    for (int64_t q = 0; q < nQ; ++q) { double f = 0; for (int64_t i = 0; i < m; ++i) for (int64_t j = 0; j < n; ++j) f += w(gi, i, j, q) * w(gi, i, j, q); s += std::sqrt(f); }
    pb.S = std::max(pb.S, s);
  }
  // every block W_aᵀW_b (wide) or W_aW_bᵀ from one matrix product, then each added to its coefficient k
  at::Tensor Wq = Wp.flatten(3).permute({0, 3, 1, 2});  // (g, nQ, m, n)
  at::Tensor X = (pb.wide ? Wq.permute({0, 2, 1, 3}).reshape({g, m, nQ * n}) : Wq.reshape({g, nQ * m, n})).contiguous();
  at::Tensor blocks = at::empty({g, nQ * r, nQ * r}, Wp.options());  // (g, nQ·r, nQ·r)
  for (int64_t gi = 0; gi < g; ++gi) {
    at::Tensor out = blocks[gi];
    at::mm_out(out, pb.wide ? X[gi].t() : X[gi], pb.wide ? X[gi] : X[gi].t());
  }
  const double* Bk = blocks.data_ptr<double>();
  pb.C.assign(g * nK * r * r, 0.0);
  for (int64_t gi = 0; gi < g; ++gi)
    for (int64_t a = 0; a < nQ; ++a)
      for (int64_t b = 0; b < nQ; ++b) {
        int64_t k = 0;  // k = q_b − q_a (wide) or q_a − q_b, row-major over 2Q − 1, shifted to ≥ 0
        for (int64_t j = 0; j < d; ++j) k = k * (2 * pb.Q[j] - 1) + (pb.wide ? qv[b * d + j] - qv[a * d + j] : qv[a * d + j] - qv[b * d + j]) + pb.Q[j] - 1;
        double* Ck = &pb.C[(gi * nK + k) * r * r];
        const double* blk = Bk + (gi * nQ * r + a * r) * nQ * r + b * r;  // rows a·r…, columns b·r…
        for (int64_t i = 0; i < r; ++i) for (int64_t j = 0; j < r; ++j) Ck[i * r + j] += blk[i * nQ * r + j];
      }
  // rounding: the coefficients' dot products (as `_coef_error`), then phases, products and sums (as `_gram_error`)
  pb.coef_err = 2 * pb.S * pb.S * gamma_k(std::max(m, n) + nQ + 2, kU64);
  const double* om = omega.data_ptr<double>();
  double arg = 0;
  for (int64_t j = 0; j < d; ++j) { double mx = 0; for (int64_t p = 0; p < P; ++p) mx = std::max(mx, std::abs(om[p * d + j])); arg += mx * 2.0 * (pb.Q[j] - 1); }
  double eps_phase = 4 * kU64 * (arg + 4) + u, sum_C = 0;
  for (int64_t gi = 0; gi < g; ++gi) {
    double s = 0;
    for (int64_t k = 0; k < nK; ++k) { double f = 0; const double* Ck = &pb.C[(gi * nK + k) * r * r]; for (int64_t i = 0; i < r * r; ++i) f += Ck[i] * Ck[i]; s += std::sqrt(f); }
    sum_C = std::max(sum_C, s);
  }
  sum_C *= 1 + 1e-6;
  pb.gram_err = (pb.coef_err + 2 * (eps_phase + 2 * u + gamma_k(nK + 4, u)) * (sum_C + pb.coef_err)) * 1.01;
  // H(ω) = C_0 + Σ_{k>0} (C_k + C_{−k}) cos(ω·k) − i (C_k − C_{−k}) sin(ω·k); C_{−k} sits at the mirrored index
  const int64_t h = nK / 2;
  std::vector<double> kv(nK * d);
  for (int64_t k = 0; k < nK; ++k) { int64_t rest = k; for (int64_t j = d - 1; j >= 0; --j) { int64_t s = 2 * pb.Q[j] - 1; kv[k * d + j] = double(rest % s - (pb.Q[j] - 1)); rest /= s; } }
  at::Tensor A = at::empty({P, 2 * h + 1}, Wp.options());
  double* pa = A.data_ptr<double>();
  for (int64_t p = 0; p < P; ++p) {
    pa[p * (2 * h + 1)] = 1;
    for (int64_t k = h + 1; k < nK; ++k) {
      double th = 0;
      for (int64_t j = 0; j < d; ++j) th += om[p * d + j] * kv[k * d + j];
      pa[p * (2 * h + 1) + (k - h)] = std::cos(th); pa[p * (2 * h + 1) + h + (k - h)] = std::sin(th);
    }
  }
  at::Tensor B = at::zeros({2 * h + 1, g, r * r, 2}, Wp.options());  // (real, imaginary) interleaved
  double* pB = B.data_ptr<double>();
  for (int64_t gi = 0; gi < g; ++gi) {
    const double* C0 = &pb.C[(gi * nK + h) * r * r];
    for (int64_t i = 0; i < r * r; ++i) pB[(gi * r * r + i) * 2] = C0[i];
    for (int64_t k = h + 1; k < nK; ++k) {
      const double* Cp = &pb.C[(gi * nK + k) * r * r];
      const double* Cm = &pb.C[(gi * nK + (nK - 1 - k)) * r * r];
      double* Bc = pB + ((k - h) * g + gi) * r * r * 2;  // cosine row: real part C_k + C_{−k}
      double* Bs = pB + (k * g + gi) * r * r * 2;  // sine row (h further on): imaginary part −(C_k − C_{−k})
      for (int64_t i = 0; i < r * r; ++i) { Bc[2 * i] = Cp[i] + Cm[i]; Bs[2 * i + 1] = Cm[i] - Cp[i]; }
    }
  }
  pb.H = at::mm(A, B.view({2 * h + 1, g * r * r * 2})).view({P, g, r * r * 2}).transpose(0, 1).contiguous();  // (g, P, r², 2)
  return pb;
}

// The top eigenpair of H at flat index i (float64, by LAPACK), and the unit singular vectors (u, v) of the symbol there.
inline std::tuple<double, at::Tensor, at::Tensor> top_pair(const GridProblem& pb, const at::Tensor& Wp,
                                                           const at::Tensor& omega, int64_t i) {
  const int64_t r = pb.r, gi = i / pb.P, p = i % pb.P, m = pb.m, n = pb.n, nQ = pb.nQ, d = pb.d;
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto [lam, V] = at::linalg_eigh(at::view_as_complex(pb.H.view({pb.g * pb.P, r, r, 2})[i]));
  at::Tensor x = V.select(1, r - 1).contiguous();  // the top eigenvector
  // the symbol K(ω) = Σ_q W_q e^{-iω·q} (m × n) at the point
  const double* W = Wp.data_ptr<double>();
  const double* om = omega.data_ptr<double>();
  std::vector<double> Kr(m * n, 0.0), Ki(m * n, 0.0);
  for (int64_t q = 0; q < nQ; ++q) {
    int64_t rest = q; double th = 0;
    for (int64_t j = d - 1; j >= 0; --j) { th += om[p * d + j] * double(rest % pb.Q[j]); rest /= pb.Q[j]; }
    const double c = std::cos(th), s = -std::sin(th);
    for (int64_t a = 0; a < m; ++a) for (int64_t b = 0; b < n; ++b) { double v = W[((gi * m + a) * n + b) * nQ + q]; Kr[a * n + b] += v * c; Ki[a * n + b] += v * s; }
  }
  at::Tensor K = at::complex(at::from_blob(Kr.data(), {m, n}, f64).clone(), at::from_blob(Ki.data(), {m, n}, f64).clone());
  at::Tensor y = pb.wide ? at::mv(K, x) : at::mv(K.t().conj_physical(), x);
  y = y / at::linalg_vector_norm(y).clamp_min(1e-300);
  double l = std::max(lam[r - 1].item<double>(), 0.0);
  return pb.wide ? std::make_tuple(l, y, x) : std::make_tuple(l, x, y);
}

// The whole small-grid certificate: returns (C (g, n_K, r, r) float64, bound (g·P,) float64 proven bounds on λ_max(H)
// per point, x (g·P, r) power vectors, u (m,), v (n,) complex128 top singular vectors at the maximiser,
// info = [best flat index, λ̂ there, Σ‖C̃ − C‖_F bound]).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> grid_certificate(
    const at::Tensor& Wp_in, const at::Tensor& omega_in, double slack, const c10::optional<at::Tensor>& x_in, bool single) {
  TORCH_CHECK(Wp_in.device().is_cpu() && Wp_in.scalar_type() == at::kDouble && Wp_in.dim() >= 4 && Wp_in.dim() <= 5,
              "linear_contraction grid_certificate: expected a float64 CPU polyphase kernel (g, m, n, *Q) with 1 or 2 "
              "spatial dimensions, got ", Wp_in.scalar_type(), " on ", Wp_in.device(), " of shape ", Wp_in.sizes(), ".");
  TORCH_CHECK(omega_in.scalar_type() == at::kDouble && omega_in.dim() == 2 && omega_in.size(1) == Wp_in.dim() - 3,
              "linear_contraction grid_certificate: expected float64 frequencies (P, ", Wp_in.dim() - 3, "), got ", omega_in.sizes(), ".");
  at::Tensor Wp = Wp_in.contiguous(), omega = omega_in.cpu().contiguous();
  const double u = single ? kU32 : kU64;
  GridProblem pb = grid_problem(Wp, omega, u);
  const int64_t G = pb.g * pb.P, r = pb.r;
  // power steps on H from the last call's vectors (one) or from ones (three): the likeliest maximiser is where ‖Hx‖ peaks
  std::vector<double> xr(G * r, 1.0), xi(G * r, 0.0);
  bool warm = x_in.has_value() && x_in->defined() && x_in->dim() == 2 && x_in->size(0) == G && x_in->size(1) == r;
  if (warm) {
    at::Tensor xw = at::view_as_real(x_in->to(at::kComplexDouble).contiguous()).contiguous();
    const double* px = xw.data_ptr<double>();
    for (int64_t a = 0; a < G * r; ++a) { xr[a] = px[2 * a]; xi[a] = px[2 * a + 1]; }
  }
  std::vector<double> yr(r), yi(r), norms(G);
  for (int64_t i = 0; i < G; ++i) {
    const double* Hx = pb.Hp(i);
    double* vr = &xr[i * r]; double* vi = &xi[i * r];
    for (int step = 0; step < (warm ? 1 : 3); ++step) {
      double nn = 0;
      for (int64_t a = 0; a < r; ++a) {
        double sr = 0, si = 0;
        for (int64_t b = 0; b < r; ++b) {
          double hr = Hx[2 * (a * r + b)], hi = Hx[2 * (a * r + b) + 1];
          sr += hr * vr[b] - hi * vi[b]; si += hr * vi[b] + hi * vr[b];
        }
        yr[a] = sr; yi[a] = si; nn += sr * sr + si * si;
      }
      nn = std::sqrt(nn); norms[i] = nn;
      double inv = 1 / std::max(nn, 1e-30);
      for (int64_t a = 0; a < r; ++a) { vr[a] = yr[a] * inv; vi[a] = yi[a] * inv; }
    }
  }
  int64_t best = std::max_element(norms.begin(), norms.end()) - norms.begin();
  auto [lam0, uu, vv] = top_pair(pb, Wp, omega, best);
  double tau = slack / 4, s = lam0 * (1 + tau) * (1 + tau);
  std::vector<double> bound(G), ev(G, -std::numeric_limits<double>::infinity());
  // s·I − H̃ at every point, 16 (8) points per SIMD instruction (batched_cholesky.h: H rounded to the factorisation's
  // precision and negated, the shift added in it, the margin of `_chol_bounds`)
  auto factor = [&](const int64_t* idx, int64_t n, const double* sh, double* out) {
    if (single) rows_chol_bounds<float, double>(pb.H.data_ptr<double>(), idx, n, r, -1.0f, sh, out);
    else rows_chol_bounds<double, double>(pb.H.data_ptr<double>(), idx, n, r, -1.0, sh, out);
  };
  std::vector<double> shift(G, s);
  factor(nullptr, G, shift.data(), bound.data());
  // a point whose factorisation failed has λ_max above the shift: its exact eigenvalue, and a shift just above it
  for (int round = 0; round < 3; ++round) {
    std::vector<int64_t> bad;
    for (int64_t i = 0; i < G; ++i) if (!std::isfinite(bound[i])) bad.push_back(i);
    if (bad.empty()) break;
    std::vector<double> sh(bad.size()), got(bad.size());
    for (size_t q = 0; q < bad.size(); ++q) {
      ev[bad[q]] = at::linalg_eigvalsh(at::view_as_complex(pb.H.view({G, r, r, 2})[bad[q]]))[r - 1].item<double>();
      sh[q] = std::max(ev[bad[q]], 0.0) * (1 + tau) * (1 + tau) + 1e-300;
    }
    factor(bad.data(), int64_t(bad.size()), sh.data(), got.data());
    for (size_t q = 0; q < bad.size(); ++q) bound[bad[q]] = got[q];
    tau *= 4;
  }
  for (auto& b : bound) b += pb.gram_err;
  int64_t top_ev = std::max_element(ev.begin(), ev.end()) - ev.begin();
  if (ev[top_ev] > lam0) { best = top_ev; std::tie(lam0, uu, vv) = top_pair(pb, Wp, omega, best); }
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor C = at::from_blob(pb.C.data(), {pb.g, pb.nK, r, r}, f64).clone();
  at::Tensor B = at::from_blob(bound.data(), {G}, f64).clone();
  at::Tensor X = at::complex(at::from_blob(xr.data(), {G, r}, f64).clone(), at::from_blob(xi.data(), {G, r}, f64).clone());
  if (single) X = X.to(at::kComplexFloat);
  at::Tensor info = at::tensor({double(best), lam0, pb.coef_err}, f64);
  return {C, B, X, uu, vv, info};
}

}  // namespace linear_contraction
