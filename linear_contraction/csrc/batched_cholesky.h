// Proven bounds λ_max(H_i) ≤ b_i for a batch of small Hermitian matrices, by one Cholesky factorisation of s_i·I − H_i
// each: the arithmetic and margin of `_chol_bounds` in linear_contraction.conv_norm, whose notebook carries the proof.
// torch's batched Cholesky calls LAPACK once per matrix (≈ 6 GFLOPS on 64 × 64 complex64 here); this one factorises 16
// float32 (8 float64) matrices at once, one per SIMD lane: every lane runs the standard column algorithm on its own
// matrix, in the same order as a scalar loop, so Higham's componentwise bound holds lane by lane (no reassociation,
// no fast-math). Compiled for AVX-512, AVX2 and plain x86-64, the best one chosen when loaded (GCC's target_clones).
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LC_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LC_SIMD_CLONES
#endif

namespace linear_contraction {

// L matrices at once, lanes innermost: re/im[(i·r + j)·L + l] hold the lower triangle (j ≤ i) of lane l's Hermitian
// matrix; on return its Cholesky factor L (A = L Lᴴ). ok[l] turns false where a pivot is not positive (that lane then
// goes on with pivot 1: its numbers are meaningless, the others are unaffected).
template <typename T, int L>
inline void cholesky_lanes(T* __restrict re, T* __restrict im, int64_t r, bool* ok) {
  for (int64_t j = 0; j < r; ++j) {
    T* rj = re + j * r * L;
    T* ij = im + j * r * L;
    T d[L];
    for (int l = 0; l < L; ++l) d[l] = rj[j * L + l];
    for (int64_t k = 0; k < j; ++k)
      for (int l = 0; l < L; ++l) d[l] -= rj[k * L + l] * rj[k * L + l] + ij[k * L + l] * ij[k * L + l];
    for (int l = 0; l < L; ++l) {
      const bool pos = d[l] > 0;
      ok[l] = ok[l] && pos;
      d[l] = pos ? std::sqrt(d[l]) : T(1);
      rj[j * L + l] = d[l];
      ij[j * L + l] = 0;
    }
    for (int64_t i = j + 1; i < r; ++i) {  // L_ij = (A_ij − Σ_k L_ik conj(L_jk)) / L_jj
      T* ri = re + i * r * L;
      T* ii = im + i * r * L;
      T a[L], b[L];
      for (int l = 0; l < L; ++l) { a[l] = ri[j * L + l]; b[l] = ii[j * L + l]; }
      for (int64_t k = 0; k < j; ++k)
        for (int l = 0; l < L; ++l) {
          const T xr = ri[k * L + l], xi = ii[k * L + l], yr = rj[k * L + l], yi = ij[k * L + l];
          a[l] -= xr * yr + xi * yi;
          b[l] -= xi * yr - xr * yi;
        }
      for (int l = 0; l < L; ++l) { ri[j * L + l] = a[l] / d[l]; ii[j * L + l] = b[l] / d[l]; }
    }
  }
}

LC_SIMD_CLONES inline void cholesky_lanes_f32(float* re, float* im, int64_t r, bool* ok) { cholesky_lanes<float, 16>(re, im, r, ok); }
LC_SIMD_CLONES inline void cholesky_lanes_f64(double* re, double* im, int64_t r, bool* ok) { cholesky_lanes<double, 8>(re, im, r, ok); }

// Chunks c0…c1 of L matrices: gather each matrix's lower triangle with the shift added to the diagonal in T, factorise,
// and write the bound (or +inf) per matrix. (torch's route reads the upper triangle; either triangle of the computed −H̃
// is within the entrywise rounding bound that `_gram_error` charges, so either proves the bound.)
template <typename T, int L>
void chol_bound_chunks(const T* pm, const double* s, double* out, int64_t B, int64_t r, int64_t c0, int64_t c1) {
  const double u = std::is_same<T, float>::value ? 5.9604644775390625e-08 : 1.1102230246251565e-16, u64 = 1.1102230246251565e-16;
  const double gm = (2 * r + 8) * u / (1 - (2 * r + 8) * u);
  const double k = 2 * (gm / (1 - gm) + 2 * u) * (1 + 4 * u) * (1 + 8 * u64);
  const double tiny = 2.0 * (r + 1) * (r + 1) * std::ldexp(1.0, -120);
  std::vector<T> re(r * r * L), im(r * r * L);
  for (int64_t c = c0; c < c1; ++c) {
    bool ok[L];
    double sum_d[L];
    for (int l = 0; l < L; ++l) { ok[l] = true; sum_d[l] = 0; }
    // row by row, lane by lane: the lower triangle of row i of every lane's matrix is read contiguously and written
    // into a stretch of the buffer small enough to stay in L1 (the order i, j, l was bound by cache misses)
    for (int64_t i = 0; i < r; ++i) {
      for (int l = 0; l < L; ++l) {
        const int64_t b = c * L + l;
        T* dr = re.data() + i * r * L + l;
        T* di = im.data() + i * r * L + l;
        if (b >= B) {  // lanes past the batch: the identity
          for (int64_t j = 0; j <= i; ++j) { dr[j * L] = T(i == j); di[j * L] = 0; }
          continue;
        }
        const T* row = pm + (b * r + i) * r * 2;  // row i of matrix b, real and imaginary interleaved
        for (int64_t j = 0; j < i; ++j) { dr[j * L] = row[2 * j]; di[j * L] = row[2 * j + 1]; }
        const T dg = row[2 * i] + T(s[b]);  // the shifted diagonal, rounded in T as torch's in-place add rounds it
        dr[i * L] = dg; di[i * L] = 0;
        sum_d[l] += double(dg);
      }
    }
    if constexpr (std::is_same<T, float>::value) cholesky_lanes_f32(re.data(), im.data(), r, ok);
    else cholesky_lanes_f64(re.data(), im.data(), r, ok);
    for (int l = 0; l < L; ++l) {
      const int64_t b = c * L + l;
      if (b < B) out[b] = ok[l] ? s[b] * (1 + 8 * u64) + k * sum_d[l] + tiny : std::numeric_limits<double>::infinity();
    }
  }
}

// (B,) float64 proven bounds on λ_max(H_i) (inf where s_i·I − H̃_i is not proven positive definite), from M = −H̃ (B, r, r)
// complex64/128 and the shifts s (B,) float64; M is not modified.
inline at::Tensor chol_bounds(const at::Tensor& M_in, const at::Tensor& s_in) {
  TORCH_CHECK(M_in.device().is_cpu() && (M_in.scalar_type() == at::kComplexFloat || M_in.scalar_type() == at::kComplexDouble)
              && M_in.dim() == 3 && M_in.size(1) == M_in.size(2),
              "linear_contraction chol_bounds: expected a CPU complex64/complex128 batch of square matrices (B, r, r), got ",
              M_in.scalar_type(), " on ", M_in.device(), " of shape ", M_in.sizes(), ".");
  TORCH_CHECK(s_in.dim() == 1 && s_in.size(0) == M_in.size(0), "linear_contraction chol_bounds: expected ", M_in.size(0),
              " shifts, got shape ", s_in.sizes(), ".");
  const at::Tensor M = at::view_as_real(M_in.resolve_conj().contiguous()).contiguous();
  const at::Tensor s = s_in.to(at::kDouble).cpu().contiguous();
  const int64_t B = M_in.size(0), r = M_in.size(1);
  at::Tensor out = at::empty({B}, s.options());
  const bool single = M_in.scalar_type() == at::kComplexFloat;
  const int64_t L = single ? 16 : 8, chunks = (B + L - 1) / L;
  auto run = [&](int64_t c0, int64_t c1) {
    if (single) chol_bound_chunks<float, 16>(M.data_ptr<float>(), s.data_ptr<double>(), out.data_ptr<double>(), B, r, c0, c1);
    else chol_bound_chunks<double, 8>(M.data_ptr<double>(), s.data_ptr<double>(), out.data_ptr<double>(), B, r, c0, c1);
  };
  // over torch's OpenMP team (the extension is built with -fopenmp): a thread of our own would compete with its workers,
  // which spin for a while after each parallel region (measured: no gain in a training step)
  at::parallel_for(0, chunks, double(L) * r * r * r >= 2e5 ? 1 : chunks, run);
  return out;
}

}  // namespace linear_contraction
