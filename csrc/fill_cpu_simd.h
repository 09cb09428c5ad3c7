// What the CPU kernel's SIMD paths share: the path names, the host-side predicates that pick exact
// shortcuts per tensor, and the AVX-512 path's entry point (fill_cpu_avx512.cpp).
//
// No ATen here: the AVX-512 translation unit includes this header, and its code is compiled with
// per-function target attributes only, so nothing inline from other headers is built for AVX-512.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "fastinit_stream.h"
#include "fill_job.h"

namespace fastinit {

// The CPU kernel's code paths, slowest first (FASTINIT_CPU_SIMD names them: scalar, avx2, avx512).
enum SimdPath : int { SIMD_SCALAR = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };

// Output element types as the SIMD entry points see them (storage only).
enum OutType : int { OUT_F32 = 0, OUT_F64 = 1, OUT_F16 = 2, OUT_BF16 = 3 };

// Whether normal values need the steps that are no-ops for the plain N(mean, std) parameters:
// center 0 and half-width 1 make s * h + c equal to s (s != 0) and the clamp to +-X_MAX a no-op
// (|s| <= 1 - 2^-23 < X_MAX), and infinite bounds make the final clamp one. Skipping them gives the
// same bits with fewer ops. The bounds are those of the arithmetic that clamps: float32 for float32 /
// bfloat16 / float16 outputs, double for float64 outputs (a double bound such as 1e300 is +inf as a
// float, and is not a no-op there).
inline bool normal_is_plain(const TensorJob& job, bool f64) {
  const RandParams& p = job.rand;
  const bool infinite = f64 ? (job.rand64.low == -INFINITY && job.rand64.high == INFINITY)
                            : (p.low == -INFINITY && p.high == INFINITY);
  return p.center == 0.0f && p.half_width == 1.0f && infinite;
}

// Whether the UNIFORM clamp to [lo, hi] is the identity for every stream word (float32 outputs).
// Proof: v(s) = round(round(s * h) + c) is monotone in s (rounding to nearest is non-decreasing, and
// s -> s * h is monotone for either sign of h), so every v lies between v(s_min) and v(s_max), the
// values of the two extreme words 0 and 2^32 - 1; if both are inside [lo, hi], every v is, and
// max(v, lo) = min(v, hi) = v. NaN parameters fail the comparisons, so they keep the clamp.
// Each side alone: max(v, lo) = v for every v when v(s_min) and v(s_max) are both >= lo (then
// f_min(f_max(v, lo), hi) = f_min(v, hi)), and min(v, hi) = v when both are <= hi. The comparisons are made on
// both extremes (not on the smaller one) so that NaN in either keeps the clamp.
inline bool uniform_low_is_identity(const RandParams& p) {
  const float a = f_add(f_mul(symmetric_uniform(0u), p.half_width), p.center);
  const float b = f_add(f_mul(symmetric_uniform(0xFFFFFFFFu), p.half_width), p.center);
  return a >= p.low && b >= p.low;
}
inline bool uniform_high_is_identity(const RandParams& p) {
  const float a = f_add(f_mul(symmetric_uniform(0u), p.half_width), p.center);
  const float b = f_add(f_mul(symmetric_uniform(0xFFFFFFFFu), p.half_width), p.center);
  return a <= p.high && b <= p.high;
}

// Whether s * h may be computed as (n * 2^8) * (h * 2^-31), n = s * 2^23 the odd integer of the word.
// Proof: when h' = h * 2^-31 is an exact, normal float32, the real products (n * 2^8) * h' and s * h
// are the same real number n * h * 2^-23, and rounding to nearest is a function of the real value, so
// both round to the same float32 bit for bit (over/underflow included). h' * 2^31 == h checks
// exactness (the multiply back by 2^31 is exact for a normal h'). With h' normal, |n * 2^8 * h'| >= h'
// > 0, so v + c with c = +-0 is v itself: the add may be skipped (tests/test_cpu_kernel.py checks the
// identity over all 2^23 n for a spread of h).
inline bool uniform_scale_folds(const RandParams& p) {
  const float hs = f_mul(p.half_width, 0x1p-31f);
  return std::fpclassify(hs) == FP_NORMAL && f_mul(hs, 0x1p31f) == p.half_width;
}

// Kinds of value of the SIMD paths, one per template instance (random_variant() picks one per tensor):
//   U_GEN:  s * h + c                                      (uniform_value)
//   U_FOLD: cvt(n * 2^8) * (h * 2^-31), c = 0: uniform_scale_folds() proves it is s * h + c bit for bit
//   | U_ADDC: U_FOLD's product (the same bits as round(s * h)) then + c, for c != 0
//   | U_LO: then max(v, lo); without it uniform_low_is_identity() proved that side of the clamp a no-op
//   | U_HI: then min(., hi); without it uniform_high_is_identity() proved that side a no-op. f_min(f_max(v, lo), hi)
//     with one side the identity for every v is the other side alone, so the two are separate steps.
//   N_FULL / N_PLAIN: normal_value / the same with normal_is_plain() parameters (no-op steps skipped)
// float64 outputs take U_GEN or a normal: their clamp is in the double finish.
constexpr int U_GEN = 0, U_FOLD = 1, U_LO = 2, U_ADDC = 4, U_HI = 8, N_FULL = 16, N_PLAIN = 17;
constexpr bool is_normal(int V) { return V >= N_FULL; }

// The variant a random job takes. unguarded_bf16: the output is bfloat16 stored with an instruction that is
// exact only on normal or zero inputs (the AVX-512 path's vcvtne2ps2bf16 without its per-vector check).
inline int random_variant(const TensorJob& job, bool f64, bool unguarded_bf16) {
  if (job.kind == KIND_NORMAL) return normal_is_plain(job, f64) ? N_PLAIN : N_FULL;
  if (f64) return U_GEN;
  const RandParams& p = job.rand;
  const bool lo = !uniform_low_is_identity(p), hi = !uniform_high_is_identity(p);
  const int clamp = (lo ? U_LO : 0) | (hi ? U_HI : 0);
  // The folded uniform without + c is never NaN or denormal: |v| = round(|n * 2^8| * h') >= 2^8 * h' >= 2^-118
  // (|n| >= 1, h' = h * 2^-31 normal) and |v| <= h (finite); the clamp can only replace v by lo or hi, so
  // for an unguarded bfloat16 store those must be normal or zero too (else: no fold).
  const auto plain_bound = [](float b) { return std::fpclassify(b) == FP_NORMAL || b == 0.0f; };
  const bool bounds_ok = !unguarded_bf16 || ((!lo || plain_bound(p.low)) && (!hi || plain_bound(p.high)));
  const bool addc = p.center != 0.0f;  // NaN too: then it is added, as uniform_value does
  if (!uniform_scale_folds(p) || !(addc || bounds_ok)) return U_GEN | clamp;
  return U_FOLD | (addc ? U_ADDC : 0) | clamp;
}

// f(std::integral_constant<int, V>{}) for the variant v: one template instance per variant.
template <typename F>
int64_t with_variant(int v, F&& f) {
  using std::integral_constant;
  switch (v) {
#define FI_VARIANT_CASE(x) \
  case (x):                \
    return f(integral_constant<int, (x)>{});
#define FI_CLAMP_CASES(base)           \
  FI_VARIANT_CASE(base)                \
  FI_VARIANT_CASE((base) | U_LO)       \
  FI_VARIANT_CASE((base) | U_HI)       \
  FI_VARIANT_CASE((base) | U_LO | U_HI)
    FI_CLAMP_CASES(U_GEN)
    FI_CLAMP_CASES(U_FOLD)
    FI_CLAMP_CASES(U_FOLD | U_ADDC)
    FI_VARIANT_CASE(N_FULL)
    FI_VARIANT_CASE(N_PLAIN)
#undef FI_CLAMP_CASES
#undef FI_VARIANT_CASE
  }
  return 0;
}

// f(std::integral_constant<int, V>{}) for the variant random_variant() picks for this job, one template instance per
// variant; for float64 outputs (F64) only those it can pick are instantiated (the others return 0 quads written,
// which would leave them to the caller's scalar path).
template <bool F64, typename F>
int64_t with_job_variant(const TensorJob& job, bool unguarded_bf16, F&& f) {
  return with_variant(random_variant(job, F64, unguarded_bf16), [&](auto v) -> int64_t {
    constexpr int V = decltype(v)::value;
    if constexpr (F64 && !is_normal(V) && V != U_GEN) {
      return 0;
    } else {
      return f(v);
    }
  });
}

// Per-run Philox key schedule of the SIMD paths, computed once per call; 64-bit entries so that a broadcast of
// one is a plain memory operand.
struct PhiloxKeys {
  uint64_t k0[10], k1[10];
  uint32_t hi1, lo1;  // round 1's mulhilo(M1, c2) with c2 = the tensor key's low word: the same in every lane
  uint32_t key_hi;    // c3 of round 1
};

inline PhiloxKeys make_keys(uint64_t key, uint64_t seed) {
  PhiloxKeys k{};
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r, k0 += PHILOX_W0, k1 += PHILOX_W1) {
    k.k0[r] = k0;
    k.k1[r] = k1;
  }
  mulhilo32(PHILOX_M1, static_cast<uint32_t>(key), k.hi1, k.lo1);
  k.key_hi = static_cast<uint32_t>(key >> 32);
  return k;
}

// AVX-512 path: the full quads [q, q + nquads) of a run, written to dst (element 4q of the run at
// dst[0]). Returns how many quads it wrote (a multiple of 8; the caller does the rest with the scalar
// functions). stream: use non-temporal stores where the destination allows.
int64_t random_quads_avx512(OutType out, void* dst, uint64_t q, int64_t nquads, const TensorJob& job, uint64_t seed,
                            bool stream);
// Whether this CPU (and OS) runs the AVX-512 path: avx512f/bw/vl/dq.
bool cpu_has_avx512();
// Whether the AVX-512 path may also use vcvtne2ps2bf16 (avx512_bf16) for bfloat16 outputs.
bool cpu_has_avx512_bf16();
// Tests only (torch.ops.fastinit._avx512_bf16_round): the AVX-512 path's float32 -> bfloat16 rounding of
// src[0 .. n) (native: the vcvtne2ps2bf16 variant). False, writing nothing, where the CPU lacks it.
bool avx512_bf16_convert(const float* src, uint16_t* dst, int64_t n, bool native);
// Fence for the non-temporal stores of the AVX-512 path (sfence).
void avx512_store_fence();

}  // namespace fastinit
