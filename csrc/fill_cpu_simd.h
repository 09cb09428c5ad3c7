// What the CPU kernel's SIMD paths share: the path names, the host-side predicates that pick exact
// shortcuts per tensor, and the AVX-512 path's entry point (fill_cpu_avx512.cpp).
//
// No ATen here: the AVX-512 translation unit includes this header, and its code is compiled with
// per-function target attributes only, so nothing inline from other headers is built for AVX-512.
#pragma once

#include <cmath>
#include <cstdint>

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
inline bool uniform_clamp_is_identity(const RandParams& p) {
  return uniform_low_is_identity(p) && uniform_high_is_identity(p);
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
