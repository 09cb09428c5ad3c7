// The fastinit stream (docs/STREAM.md) as scalar host/device functions.
//
// This header is the one C++ statement of the stream (contract v2), shared by the CPU kernel
// (fill_cpu.cpp, whose SIMD paths mirror it operation for operation) and the CUDA kernel
// (fill_cuda.cu). Every float step is one IEEE-754 float32 (float64 where the contract says so)
// operation rounded to nearest-even, in the documented order:
//   - no fused multiply-add: device code uses the __f*_rn intrinsics, which nvcc never contracts
//     (and the build passes -fmad=false as well); host code must be compiled with
//     -ffp-contract=off and without -ffast-math;
//   - sqrt is the correctly rounded one (__fsqrt_rn on the device, sqrtss on the host);
//   - no division anywhere in the float path.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define FASTINIT_HD __host__ __device__ __forceinline__
#else
#define FASTINIT_HD inline
#include <cmath>
#endif

namespace fastinit {

// Distribution kinds (the KIND column, fastinit/tables.py).
constexpr int64_t KIND_CONSTANT = 0;
constexpr int64_t KIND_UNIFORM = 1;
constexpr int64_t KIND_NORMAL = 2;
constexpr int64_t KIND_DIRAC = 3;

// Philox4x32-10 (Random123).
constexpr uint32_t PHILOX_M0 = 0xD2511F53u;
constexpr uint32_t PHILOX_M1 = 0xCD9E8D57u;
constexpr uint32_t PHILOX_W0 = 0x9E3779B9u;
constexpr uint32_t PHILOX_W1 = 0xBB67AE85u;

// float32 constants as exact hex literals so every compiler parses the same bits.
constexpr float TWO_POW_M23 = 0x1p-23f;
constexpr float SQRT2 = 0x1.6a09e6p+0f;
constexpr float X_MAX = 0x1.fffffep-1f;  // 1 - 2^-24
constexpr float LN2_HI = 0x1.63p-1f;
constexpr float LN2_LO = -0x1.bd0106p-13f;

// Coefficient tables, highest degree first (Horner order).
#define FASTINIT_LOG_P                                                                                 \
  {0x1.204376p-4f, -0x1.d7a370p-4f, 0x1.de4a34p-4f, -0x1.fcba9ep-4f, 0x1.23d37ep-3f, -0x1.555ca0p-3f, \
   0x1.999d58p-3f, -0x1.fffff8p-3f, 0x1.555554p-2f}
#define FASTINIT_ERFINV_CENTRAL                                                                           \
  {0x1.e2cb10p-26f, 0x1.70966cp-22f, -0x1.d8e6aep-19f, -0x1.26b582p-18f, 0x1.ca65b6p-13f, -0x1.48a810p-10f, \
   -0x1.11c9dep-8f, 0x1.f91ec6p-3f, 0x1.805c5ep+0f}
#define FASTINIT_ERFINV_TAIL                                                                            \
  {-0x1.a3e136p-13f, 0x1.a76ad6p-14f, 0x1.61b8e4p-10f, -0x1.e17bcep-9f, 0x1.7824f6p-8f, -0x1.f38baep-8f, \
   0x1.354afcp-7f, 0x1.006db6p+0f, 0x1.6a9efcp+1f}
constexpr int POLY_TERMS = 9;

// ---- float32 primitives that can never be contracted or reassociated ----
FASTINIT_HD float f_mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FASTINIT_HD float f_add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FASTINIT_HD float f_sub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
FASTINIT_HD float f_sqrt(float a) {
#ifdef __CUDA_ARCH__
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
// max/min that keep `x` on ties, as torch.clamp does (matters only for +0 vs -0).
FASTINIT_HD float f_max(float x, float lo) { return x < lo ? lo : x; }
FASTINIT_HD float f_min(float x, float hi) { return x > hi ? hi : x; }

FASTINIT_HD uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
FASTINIT_HD float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// ---- Philox ----
FASTINIT_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

struct Quad {
  uint32_t x[4];
};

// Philox4x32-10 of counter (c0..c3) under key (k0, k1).
FASTINIT_HD Quad philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    if (r) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(PHILOX_M0, c0, hi0, lo0);
    mulhilo32(PHILOX_M1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return Quad{{c0, c1, c2, c3}};
}

// The four stream words of global quad `q` (elements 4q .. 4q+3) of tensor `key` under `seed`.
FASTINIT_HD Quad stream_quad(uint64_t q, uint64_t key, uint64_t seed) {
  return philox4x32_10(static_cast<uint32_t>(q), static_cast<uint32_t>(q >> 32), static_cast<uint32_t>(key),
                       static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32));
}

// s = 2u - 1 = (2m + 1 - 2^23) * 2^-23 with m = x >> 9: exact, an odd multiple of 2^-23 in (-1, 1).
// (2m + 1) is (x >> 8) | 1, since the bit that x >> 8 adds below m is replaced by the 1.
FASTINIT_HD float symmetric_uniform(uint32_t x) {
  const int32_t n = static_cast<int32_t>((x >> 8) | 1u) - (1 << 23);
  return f_mul(static_cast<float>(n), TWO_POW_M23);
}

// ---- log and erfinv (docs/STREAM.md) ----
FASTINIT_HD float horner9(const float (&c)[POLY_TERMS], float y) {
  float p = c[0];
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
  for (int k = 1; k < POLY_TERMS; ++k) {
    p = f_mul(p, y);
    p = f_add(p, c[k]);
  }
  return p;
}

// Natural log of a positive normal float32.
FASTINIT_HD float log_f32(float y) {
  constexpr float LOG_P[POLY_TERMS] = FASTINIT_LOG_P;
  const uint32_t b = float_bits(y);
  int32_t e = static_cast<int32_t>(b >> 23) - 127;
  float m = bits_float((b & 0x7FFFFFu) | 0x3F800000u);
  if (m > SQRT2) {
    m = f_mul(m, 0.5f);
    e += 1;
  }
  const float ef = static_cast<float>(e);
  const float f = f_sub(m, 1.0f);
  const float z = f_mul(f, f);
  float r = horner9(LOG_P, f);
  r = f_mul(r, f);
  r = f_mul(r, z);
  r = f_add(r, f_mul(ef, LN2_LO));
  r = f_sub(r, f_mul(z, 0.5f));
  r = f_add(f, r);
  r = f_add(r, f_mul(ef, LN2_HI));
  return r;
}

// Giles' single-precision erfinv of x in [-X_MAX, X_MAX].
FASTINIT_HD float erfinv_f32(float x) {
  constexpr float CENTRAL[POLY_TERMS] = FASTINIT_ERFINV_CENTRAL;
  constexpr float TAIL[POLY_TERMS] = FASTINIT_ERFINV_TAIL;
  const float t = f_mul(f_sub(1.0f, x), f_add(1.0f, x));
  const float w = -log_f32(t);  // negation is exact
  // Only the choice matters (docs/STREAM.md), so the branch not taken need not be computed.
  const float p = w < 5.0f ? horner9(CENTRAL, f_sub(w, 2.5f)) : horner9(TAIL, f_sub(f_sqrt(w), 3.0f));
  return f_mul(p, x);
}

// ---- float64 primitives (float64 outputs, stream contract v2) ----
FASTINIT_HD double d_mul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
FASTINIT_HD double d_add(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
FASTINIT_HD double d_max(double x, double lo) { return x < lo ? lo : x; }
FASTINIT_HD double d_min(double x, double hi) { return x > hi ? hi : x; }

// ---- per-kind values ----

// Parameters of a random kind (P_* columns) for float32 / bfloat16 / float16 outputs: float32 values
// on the host (build_tables writes float32-exact numbers, so the conversion is exact).
struct RandParams {
  float center, half_width, mean, std, low, high;
};
// The same columns as doubles, for float64 outputs (UNIFORM: all of them; NORMAL: mean .. high).
struct RandParams64 {
  double center, half_width, mean, std, low, high;
};

// UNIFORM: v = s * h ; v = v + c ; clamp to [lo, hi], where lo and hi are values of the output dtype,
// so the monotone final rounding keeps v inside torch's [dtype(a), dtype(b)).
FASTINIT_HD float uniform_value(float s, const RandParams& p) {
  const float v = f_add(f_mul(s, p.half_width), p.center);
  return f_min(f_max(v, p.low), p.high);
}

FASTINIT_HD double uniform_value64(float s, const RandParams64& p) {
  const double v = d_add(d_mul(static_cast<double>(s), p.half_width), p.center);
  return d_min(d_max(v, p.low), p.high);
}

// The standard normal z of the float32 normal sequence (x = s * h + c clamped, z = erfinv(x) * SQRT2).
FASTINIT_HD float normal_z(float s, const RandParams& p) {
  float x = f_add(f_mul(s, p.half_width), p.center);
  x = f_min(f_max(x, -X_MAX), X_MAX);
  return f_mul(erfinv_f32(x), SQRT2);
}

FASTINIT_HD float normal_value(float s, const RandParams& p) {
  const float v = f_add(f_mul(normal_z(s, p), p.std), p.mean);
  return f_min(f_max(v, p.low), p.high);
}

// float64 outputs: z as in float32, then scale, shift and clamp in double with the exact parameters.
FASTINIT_HD double normal_value64(float s, const RandParams& p, const RandParams64& d) {
  const double v = d_add(d_mul(static_cast<double>(normal_z(s, p)), d.std), d.mean);
  return d_min(d_max(v, d.low), d.high);
}

// Value of a random kind (UNIFORM or NORMAL) from its stream word: float32 for float32 / bfloat16 /
// float16 outputs (rounded to the dtype by the caller) ...
FASTINIT_HD float random_value(int64_t kind, uint32_t word, const RandParams& p) {
  const float s = symmetric_uniform(word);
  return kind == KIND_UNIFORM ? uniform_value(s, p) : normal_value(s, p);
}

// ... and double for float64 outputs.
FASTINIT_HD double random_value64(int64_t kind, uint32_t word, const RandParams& p, const RandParams64& d) {
  const float s = symmetric_uniform(word);
  return kind == KIND_UNIFORM ? uniform_value64(s, d) : normal_value64(s, p, d);
}

// DIRAC (and eye): 1 at the centre tap of matching (out, in) channel pairs, else 0.
// ---- n / d for 0 <= n < 2^64 and a divisor fixed per tensor, without a divide instruction ----
// GPUs have no 64-bit integer divide: nvcc calls a subroutine, whose calling convention gives the
// whole kernel a stack frame and spills. A multiply-high, a subtract, an add and two shifts are exact
// for every n (Granlund & Montgomery 1994, the round-up magic number of their section 4).
FASTINIT_HD uint64_t mulhi64(uint64_t a, uint64_t b) {
#ifdef __CUDA_ARCH__
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

struct FastDiv {
  uint64_t d;
  uint64_t magic;
  uint32_t sh1, sh2;

  FASTINIT_HD uint64_t div(uint64_t n) const {
    const uint64_t t = mulhi64(magic, n);
    return (t + ((n - t) >> sh1)) >> sh2;
  }
};

// Host only; 1 <= d <= 2^63.
inline FastDiv make_fast_div(uint64_t d) {
  uint32_t l = 0;  // ceil(log2(d))
  while ((uint64_t{1} << l) < d) ++l;
  FastDiv f{};
  f.d = d;
  // magic = floor(2^64 (2^l - d) / d) + 1 < 2^64, since 2^l - d < d.
  f.magic = static_cast<uint64_t>((static_cast<unsigned __int128>((uint64_t{1} << l) - d) << 64) / d) + 1;
  f.sh1 = l < 1 ? l : 1;
  f.sh2 = l > 0 ? l - 1 : 0;
  return f;
}

// DIRAC (and eye): 1 where the output channel o (mod out_per_group) equals the input channel and
// the spatial offset is the centre. The divisors are the table's DIRAC_INNER, _SPATIAL, _OUT_PER_GROUP.
struct DiracParams {
  FastDiv inner, spatial, out_per_group;
  uint64_t center;
};

inline DiracParams make_dirac_params(int64_t inner, int64_t spatial, int64_t out_per_group, int64_t center) {
  return DiracParams{make_fast_div(static_cast<uint64_t>(inner)), make_fast_div(static_cast<uint64_t>(spatial)),
                     make_fast_div(static_cast<uint64_t>(out_per_group)), static_cast<uint64_t>(center)};
}

FASTINIT_HD float dirac_value(int64_t g, const DiracParams& d) {
  const uint64_t o = d.inner.div(static_cast<uint64_t>(g));
  const uint64_t r = static_cast<uint64_t>(g) - o * d.inner.d;
  const uint64_t in_channel = d.spatial.div(r);
  const uint64_t offset = r - in_channel * d.spatial.d;
  const uint64_t o_in_group = o - d.out_per_group.div(o) * d.out_per_group.d;
  return (o_in_group == in_channel && offset == d.center) ? 1.0f : 0.0f;
}

// ---- where a local element sits in the global tensor ----
FASTINIT_HD int64_t global_index(int64_t j, int64_t base, int64_t row_len, int64_t row_stride) {
  return base + (j / row_len) * row_stride + j % row_len;
}

}  // namespace fastinit
