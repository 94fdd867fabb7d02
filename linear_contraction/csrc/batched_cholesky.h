// Proven bounds λ_max(H_i) ≤ b_i for batches of small Hermitian matrices, by one Cholesky factorisation of s_i·I − H_i
// each: the arithmetic and margin of `_chol_bounds` in linear_contraction.conv_norm, whose notebook carries the proof.
// torch's batched Cholesky calls LAPACK once per matrix (≈ 6 GFLOPS on 64 × 64 complex64 here); these factorise 16
// float32 (8 float64) matrices at once, one per SIMD lane: every lane runs the standard column algorithm on its own
// matrix, in the same order as a scalar loop, so Higham's componentwise bound holds lane by lane (no reassociation,
// no fast-math). Compiled for AVX-512, AVX2 and plain x86-64, the best one chosen when loaded (GCC's target_clones).
//
// Two entries: `chol_bounds` takes the matrices as a dense (B, r, r) tensor; `grid_lanes` forms the negated Gram symbol
// −H̃(ω) of a convolution straight into the lanes' layout (the product of `_neg_gram_symbol`, the same roundings), runs
// the power steps there, and `lanes_chol_bounds` factorises any of those matrices at any shifts, as often as asked.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LC_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LC_SIMD_CLONES
#endif
#if defined(__GNUC__)
#define LC_INLINE __attribute__((always_inline)) inline  // into each clone, so that each is compiled for its own instructions
#else
#define LC_INLINE inline
#endif

namespace linear_contraction {

// The lanes' layout: a chunk holds L matrices as their packed lower triangles, real parts then imaginary parts,
// lanes innermost: element (i, j ≤ i) of lane l at (i(i+1)/2 + j)·L + l.
inline int64_t tri(int64_t i) { return i * (i + 1) / 2; }

// a lane group as one GCC vector (split into narrower instructions where the clone has them); lane buffers are 64-byte aligned
typedef float LanesF32 __attribute__((vector_size(64)));
typedef double LanesF64 __attribute__((vector_size(64)));
template <typename T> struct LaneVector { using type = LanesF64; };
template <> struct LaneVector<float> { using type = LanesF32; };
template <typename T> constexpr int lanes_of() { return std::is_same<T, float>::value ? 16 : 8; }
struct AlignedDelete { void operator()(void* p) const { ::operator delete(p, std::align_val_t(64)); } };
template <typename T> using LaneBuffer = std::unique_ptr<T[], AlignedDelete>;
template <typename T> LaneBuffer<T> lane_buffer(int64_t n) { return LaneBuffer<T>(static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)))); }

// Cholesky factors A = L Lᴴ of a chunk in place; ok[l] turns false where a pivot is not positive (that lane then goes
// on with pivot 1: its numbers are meaningless, the other lanes are unaffected).
template <typename T>
LC_INLINE void cholesky_lanes(T* re_, T* im_, int64_t r, bool* ok) {
  using V = typename LaneVector<T>::type;
  constexpr int L = lanes_of<T>();
  V* __restrict re = reinterpret_cast<V*>(re_);
  V* __restrict im = reinterpret_cast<V*>(im_);
  for (int64_t j = 0; j < r; ++j) {
    V* rj = re + tri(j);
    V* ij = im + tri(j);
    V d = rj[j];
    for (int64_t k = 0; k < j; ++k) d -= rj[k] * rj[k] + ij[k] * ij[k];
    for (int l = 0; l < L; ++l) {
      const bool pos = d[l] > 0;
      ok[l] = ok[l] && pos;
      d[l] = pos ? std::sqrt(d[l]) : T(1);
    }
    rj[j] = d;
    ij[j] = V{};
    for (int64_t i = j + 1; i < r; ++i) {  // L_ij = (A_ij − Σ_k L_ik conj(L_jk)) / L_jj
      V* ri = re + tri(i);
      V* ii = im + tri(i);
      V a = ri[j], b = ii[j];
      for (int64_t k = 0; k < j; ++k) {
        a -= ri[k] * rj[k] + ii[k] * ij[k];
        b -= ii[k] * rj[k] - ri[k] * ij[k];
      }
      ri[j] = a / d;
      ii[j] = b / d;
    }
  }
}

LC_SIMD_CLONES inline void cholesky_lanes_f32(float* re, float* im, int64_t r, bool* ok) { cholesky_lanes<float>(re, im, r, ok); }
LC_SIMD_CLONES inline void cholesky_lanes_f64(double* re, double* im, int64_t r, bool* ok) { cholesky_lanes<double>(re, im, r, ok); }

// Shift a chunk's diagonals by s (rounded in T, as torch's in-place add rounds it), factorise, and write each lane's
// proven bound s(1 + 8u₆₄) + k·Σ d + 2(r + 1)²·2⁻¹²⁰ (d the shifted diagonal) or +inf; n lanes are real, the rest padding.
template <typename T>
void shift_factor_bound(T* re, T* im, int64_t r, const double* s, int n, double* out) {
  constexpr int L = lanes_of<T>();
  const double u = std::is_same<T, float>::value ? 5.9604644775390625e-08 : 1.1102230246251565e-16, u64 = 1.1102230246251565e-16;
  const double gm = (2 * r + 8) * u / (1 - (2 * r + 8) * u);
  const double k = 2 * (gm / (1 - gm) + 2 * u) * (1 + 4 * u) * (1 + 8 * u64);
  const double tiny = 2.0 * (r + 1) * (r + 1) * std::ldexp(1.0, -120);
  bool ok[L];
  double sum_d[L];
  for (int l = 0; l < L; ++l) {
    ok[l] = true; sum_d[l] = 0;
    for (int64_t i = 0; i < r; ++i) {
      T& dg = re[(tri(i) + i) * L + l];
      if (l < n) { dg = dg + T(s[l]); sum_d[l] += double(dg); }
      else {  // padding lanes: the identity
        for (int64_t j = 0; j <= i; ++j) { re[(tri(i) + j) * L + l] = T(i == j); im[(tri(i) + j) * L + l] = 0; }
      }
      im[(tri(i) + i) * L + l] = 0;
    }
  }
  if constexpr (std::is_same<T, float>::value) cholesky_lanes_f32(re, im, r, ok);
  else cholesky_lanes_f64(re, im, r, ok);
  for (int l = 0; l < n; ++l) out[l] = ok[l] ? s[l] * (1 + 8 * u64) + k * sum_d[l] + tiny : std::numeric_limits<double>::infinity();
}

// Proven bounds for B matrices of a dense batch `src` ((·, r, r) complex in precision S, real and imaginary interleaved):
// matrix b is sign·src[idx[b]] (idx null: src[b]) rounded to T, at the shift s[b]; out[b] as `shift_factor_bound` writes
// it. The lower triangle is read: torch's route reads the upper one, and either triangle of the computed −H̃ is within
// the entrywise rounding bound `_gram_error` charges.
template <typename T, typename S>
void rows_chol_bounds(const S* src, const int64_t* idx, int64_t B, int64_t r, T sign, const double* s, double* out) {
  constexpr int L = lanes_of<T>();
  const int64_t chunks = (B + L - 1) / L, nt = tri(r);
  at::parallel_for(0, chunks, double(L) * r * r * r >= 2e5 ? 1 : chunks, [&](int64_t c0, int64_t c1) {
    LaneBuffer<T> buf = lane_buffer<T>(2 * nt * L);
    T* re = buf.get();
    T* im = re + nt * L;
    for (int64_t c = c0; c < c1; ++c) {
      const int n = int(std::min<int64_t>(L, B - c * L));
      // row by row, lane by lane: row i of each matrix is read contiguously into a stretch that stays in L1
      for (int64_t i = 0; i < r; ++i)
        for (int l = 0; l < n; ++l) {
          const int64_t m = idx ? idx[c * L + l] : c * L + l;
          const S* row = src + (m * r + i) * r * 2;
          for (int64_t j = 0; j <= i; ++j) { re[(tri(i) + j) * L + l] = sign * T(row[2 * j]); im[(tri(i) + j) * L + l] = sign * T(row[2 * j + 1]); }
        }
      shift_factor_bound<T>(re, im, r, s + c * L, n, out + c * L);
    }
  });
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
  if (M_in.scalar_type() == at::kComplexFloat) rows_chol_bounds<float, float>(M.data_ptr<float>(), nullptr, B, r, 1.0f, s.data_ptr<double>(), out.data_ptr<double>());
  else rows_chol_bounds<double, double>(M.data_ptr<double>(), nullptr, B, r, 1.0, s.data_ptr<double>(), out.data_ptr<double>());
  return out;
}

// −H̃(ω) for one chunk of points of one group, straight into the lanes' layout: M = A·B as `_neg_gram_symbol` computes
// it (phases A rounded to T, coefficients B = −C₀, −(C_k + C₋ₖ), C_k − C₋ₖ formed in float64 and rounded to T, the
// products summed in T), then `steps` power steps on H = −M from x, the Rayleigh quotient of the last one.
template <typename T>
LC_INLINE void symbol_chunk(const T* Bt, int64_t h, const double* A, int n, int64_t r, T* re, T* im, T* xr, T* xi, int steps, double* rho) {
  constexpr int L = lanes_of<T>();
  const int64_t nb = 2 * h + 1;
  using V = typename LaneVector<T>::type;
  LaneBuffer<T> hold = lane_buffer<T>(nb * L);  // (re, im, xr, xi: 64-byte aligned lane buffers)
  V* Af = reinterpret_cast<V*>(hold.get());
  for (int64_t t = 0; t < nb; ++t) for (int l = 0; l < L; ++l) Af[t][l] = l < n ? T(A[l * nb + t]) : T(0);
  for (int64_t e = 0; e < tri(r); ++e) {  // element e of the packed triangle: Bt holds its nb coefficients contiguously
    const T* b = Bt + e * nb;
    V a = Af[0] * b[0], c = V{};
    for (int64_t t = 1; t <= h; ++t) a += Af[t] * b[t];  // 1, cos: the real part
    for (int64_t t = h + 1; t < nb; ++t) c += Af[t] * b[t];  // sin: the imaginary part (none for a one-tap kernel)
    std::memcpy(re + e * L, &a, sizeof(V));
    std::memcpy(im + e * L, &c, sizeof(V));
  }
  // power steps with the Hermitian completion of the lower triangle (a heuristic: it only chooses shifts)
  LaneBuffer<T> hy = lane_buffer<T>(2 * r * L);
  T* yr = hy.get();
  T* yi = yr + r * L;
  V* Yr = reinterpret_cast<V*>(yr);
  V* Yi = reinterpret_cast<V*>(yi);
  const V* Xr = reinterpret_cast<const V*>(xr);
  const V* Xi = reinterpret_cast<const V*>(xi);
  const V* Mr = reinterpret_cast<const V*>(re);
  const V* Mi = reinterpret_cast<const V*>(im);
  for (int step = 0; step < steps; ++step) {
    for (int64_t i = 0; i < r; ++i) { Yr[i] = V{}; Yi[i] = V{}; }
    for (int64_t i = 0; i < r; ++i) {  // y_i += M_ij x_j;  y_j += conj(M_ij) x_i (j < i)
      V ar = V{}, ai = V{};
      const V* mr = Mr + tri(i);
      const V* mi = Mi + tri(i);
      for (int64_t j = 0; j < i; ++j) {
        ar += mr[j] * Xr[j] - mi[j] * Xi[j];
        ai += mr[j] * Xi[j] + mi[j] * Xr[j];
        Yr[j] += mr[j] * Xr[i] + mi[j] * Xi[i];
        Yi[j] += mr[j] * Xi[i] - mi[j] * Xr[i];
      }
      Yr[i] += ar + mr[i] * Xr[i] - mi[i] * Xi[i];
      Yi[i] += ai + mr[i] * Xi[i] + mi[i] * Xr[i];
    }
    double nn[L], q[L];
    for (int l = 0; l < L; ++l) { nn[l] = 0; q[l] = 0; }
    for (int64_t i = 0; i < r; ++i)
      for (int l = 0; l < L; ++l) {
        nn[l] += double(yr[i * L + l]) * yr[i * L + l] + double(yi[i * L + l]) * yi[i * L + l];
        q[l] += double(xr[i * L + l]) * yr[i * L + l] + double(xi[i * L + l]) * yi[i * L + l];  // Re xᴴ(Mx)
      }
    if (step == steps - 1) for (int l = 0; l < n; ++l) rho[l] = -q[l];
    for (int l = 0; l < L; ++l) {
      const T inv = T(1 / std::max(std::sqrt(nn[l]), 1e-30));
      for (int64_t i = 0; i < r; ++i) { xr[i * L + l] = yr[i * L + l] * inv; xi[i * L + l] = yi[i * L + l] * inv; }
    }
  }
}

LC_SIMD_CLONES inline void symbol_chunk_f32(const float* Bt, int64_t h, const double* A, int n, int64_t r, float* re, float* im,
                                            float* xr, float* xi, int steps, double* rho) { symbol_chunk<float>(Bt, h, A, n, r, re, im, xr, xi, steps, rho); }
LC_SIMD_CLONES inline void symbol_chunk_f64(const double* Bt, int64_t h, const double* A, int n, int64_t r, double* re, double* im,
                                            double* xr, double* xi, int steps, double* rho) { symbol_chunk<double>(Bt, h, A, n, r, re, im, xr, xi, steps, rho); }

// grid_lanes(C (g, n_K, r, r) float64 Gram coefficients, A (P, 2h + 1) float64 phases [1, cos(ω·k), sin(ω·k)] of the
// points, x (g·P, r) complex start vectors (group-major), steps, single) → (the matrices in the lanes' layout, rho (g·P,)
// float64 Rayleigh quotients of the last power step, x (g·P, r) the power vectors, lane (g·P,) int64: where each
// (group, point) lives, for `lanes_chol_bounds`). A group's points fill whole chunks of their own.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> grid_lanes(const at::Tensor& C_in, const at::Tensor& A_in,
                                                                           const at::Tensor& x_in, int64_t steps, bool single) {
  TORCH_CHECK(C_in.device().is_cpu() && C_in.scalar_type() == at::kDouble && C_in.dim() == 4 && C_in.size(2) == C_in.size(3)
              && C_in.size(1) % 2 == 1, "linear_contraction grid_lanes: expected float64 CPU Gram coefficients (g, n_K odd, r, r), got ",
              C_in.scalar_type(), " of shape ", C_in.sizes(), ".");
  const int64_t g = C_in.size(0), nK = C_in.size(1), r = C_in.size(2), h = nK / 2, nb = 2 * h + 1, P = A_in.size(0);
  TORCH_CHECK(A_in.scalar_type() == at::kDouble && A_in.dim() == 2 && A_in.size(1) == nb,
              "linear_contraction grid_lanes: expected float64 phases (P, ", nb, "), got ", A_in.scalar_type(), " ", A_in.sizes(), ".");
  TORCH_CHECK(x_in.dim() == 2 && x_in.size(0) == g * P && x_in.size(1) == r && x_in.is_complex(),
              "linear_contraction grid_lanes: expected complex start vectors (", g * P, ", ", r, "), got ", x_in.sizes(), ".");
  const at::Tensor C = C_in.contiguous(), A = A_in.contiguous();
  const int64_t nt = tri(r);
  auto run = [&](auto zero) -> std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> {
    using T = decltype(zero);
    constexpr int L = lanes_of<T>();
    const auto opts = C.options().dtype(std::is_same<T, float>::value ? at::kFloat : at::kDouble);
    const int64_t per = (P + L - 1) / L, chunks = g * per;
    // the coefficients of every packed element, contiguous: Bt[g][e][t], t = 0 (−C₀), 1…h (−(C_k + C₋ₖ)), h+1…2h (C_k − C₋ₖ)
    std::vector<T> Bt(g * nt * nb);
    const double* pc = C.data_ptr<double>();
    for (int64_t gi = 0; gi < g; ++gi)
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          T* b = &Bt[(gi * nt + tri(i) + j) * nb];
          auto Ck = [&](int64_t k) { return pc[((gi * nK + k) * r + i) * r + j]; };
          b[0] = T(-Ck(h));
          for (int64_t k = 1; k <= h; ++k) { b[k] = T(-(Ck(h + k) + Ck(h - k))); b[h + k] = T(Ck(h + k) - Ck(h - k)); }
        }
    at::Tensor packed = at::empty({chunks, 2, nt, L}, opts);
    at::Tensor rho = at::empty({g * P}, C.options());
    at::Tensor x = x_in.to(std::is_same<T, float>::value ? at::kComplexFloat : at::kComplexDouble).contiguous();
    at::Tensor xo = at::empty_like(x);
    at::Tensor lane = at::empty({g * P}, C.options().dtype(at::kLong));
    const T* px = reinterpret_cast<const T*>(x.data_ptr());
    T* pxo = reinterpret_cast<T*>(xo.data_ptr());
    int64_t* pl = lane.data_ptr<int64_t>();
    for (int64_t gi = 0; gi < g; ++gi) for (int64_t p = 0; p < P; ++p) pl[gi * P + p] = gi * per * L + p;
    at::parallel_for(0, chunks, double(L) * r * r * nb >= 2e5 ? 1 : chunks, [&](int64_t c0, int64_t c1) {
      LaneBuffer<T> hx = lane_buffer<T>(2 * r * L);
      T* xr = hx.get();
      T* xi = xr + r * L;
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t gi = c / per, p0 = (c % per) * L;
        const int n = int(std::min<int64_t>(L, P - p0));
        std::fill(xr, xr + 2 * r * L, T(0));
        for (int l = 0; l < n; ++l)
          for (int64_t i = 0; i < r; ++i) { const T* v = px + ((gi * P + p0 + l) * r + i) * 2; xr[i * L + l] = v[0]; xi[i * L + l] = v[1]; }
        T* re = packed.data_ptr<T>() + c * 2 * nt * L;
        if constexpr (std::is_same<T, float>::value)
          symbol_chunk_f32(&Bt[gi * nt * nb], h, A.data_ptr<double>() + p0 * nb, n, r, re, re + nt * L, xr, xi,
                           int(steps), rho.data_ptr<double>() + gi * P + p0);
        else
          symbol_chunk_f64(&Bt[gi * nt * nb], h, A.data_ptr<double>() + p0 * nb, n, r, re, re + nt * L, xr, xi,
                           int(steps), rho.data_ptr<double>() + gi * P + p0);
        for (int l = 0; l < n; ++l)
          for (int64_t i = 0; i < r; ++i) { T* v = pxo + ((gi * P + p0 + l) * r + i) * 2; v[0] = xr[i * L + l]; v[1] = xi[i * L + l]; }
      }
    });
    return {packed, rho, xo, lane};
  };
  return single ? run(float(0)) : run(double(0));
}

// Proven bounds for the matrices at `lane` (from `grid_lanes`) at shifts s: each factorised afresh from the stored −H̃.
inline at::Tensor lanes_chol_bounds(const at::Tensor& packed, const at::Tensor& lane_in, const at::Tensor& s_in) {
  TORCH_CHECK(packed.device().is_cpu() && packed.dim() == 4 && packed.size(1) == 2 && packed.is_contiguous()
              && (packed.scalar_type() == at::kFloat || packed.scalar_type() == at::kDouble),
              "linear_contraction lanes_chol_bounds: expected the first result of grid_lanes, got ", packed.sizes(), ".");
  TORCH_CHECK(lane_in.dim() == 1 && s_in.dim() == 1 && lane_in.size(0) == s_in.size(0),
              "linear_contraction lanes_chol_bounds: expected as many lanes as shifts, got ", lane_in.sizes(), " and ", s_in.sizes(), ".");
  const at::Tensor lane = lane_in.to(at::kLong).contiguous(), s = s_in.to(at::kDouble).contiguous();
  const int64_t nt = packed.size(2), B = lane.size(0);
  int64_t r = 0;
  while (tri(r) < nt) ++r;
  at::Tensor out = at::empty({B}, s.options());
  auto run = [&](auto zero) {
    using T = decltype(zero);
    constexpr int L = lanes_of<T>();
    TORCH_CHECK(packed.size(3) == L, "linear_contraction lanes_chol_bounds: lanes of ", packed.size(3), " for ", L, ".");
    const int64_t chunks = (B + L - 1) / L, total = packed.size(0) * L;
    const int64_t* pl = lane.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) TORCH_CHECK(pl[b] >= 0 && pl[b] < total, "linear_contraction lanes_chol_bounds: lane ", pl[b], " out of range.");
    const T* src = packed.data_ptr<T>();
    at::parallel_for(0, chunks, double(L) * r * r * r >= 2e5 ? 1 : chunks, [&](int64_t c0, int64_t c1) {
      LaneBuffer<T> hold = lane_buffer<T>(2 * nt * L);
      T* buf = hold.get();
      for (int64_t c = c0; c < c1; ++c) {
        const int n = int(std::min<int64_t>(L, B - c * L));
        const int64_t first = pl[c * L];
        bool whole = n == L && first % L == 0;  // a whole stored chunk, in order: one copy
        for (int l = 1; whole && l < L; ++l) whole = pl[c * L + l] == first + l;
        if (whole) std::memcpy(buf, src + (first / L) * 2 * nt * L, sizeof(T) * 2 * nt * L);
        else
          for (int l = 0; l < n; ++l) {
            const T* from = src + (pl[c * L + l] / L) * 2 * nt * L + pl[c * L + l] % L;
            for (int64_t e = 0; e < 2 * nt; ++e) buf[e * L + l] = from[e * L];
          }
        shift_factor_bound<T>(buf, buf + nt * L, r, s.data_ptr<double>() + c * L, n, out.data_ptr<double>() + c * L);
      }
    });
  };
  if (packed.scalar_type() == at::kFloat) run(float(0)); else run(double(0));
  return out;
}

}  // namespace linear_contraction
