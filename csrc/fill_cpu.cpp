// fastinit::fill_group on the CPU: the whole group in one call, parallel over chunks of all its tensors.
//
// The group's elements are laid end to end; that range is cut into chunks of about CHUNK elements
// (boundaries moved back to a quad boundary of the global index, so no Philox call is shared by two
// chunks), and the threads of at::parallel_for take chunks one at a time until none is left: one huge
// tensor and thousands of tiny ones, of cheap and costly kinds in any order, keep every core busy alike. Inside a run of consecutive global indices, full quads
// go through a SIMD path chosen at run time from the CPU's features (AVX-512 in fill_cpu_avx512.cpp,
// else AVX2 here: 4 quads per vector of 64-bit lanes, 16 quads per step), and partial quads at run
// edges through the scalar functions of fastinit_stream.h. The SIMD code repeats those functions
// operation for operation (or with shortcuts proven exact next to them), so every path gives the
// same bits. FASTINIT_CPU_SIMD=scalar|avx2|avx512 forces one path (0 = scalar; unset or auto = the best
// the CPU has); forcing a path the CPU lacks raises.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "fastinit_stream.h"
#include "fill_cpu_simd.h"
#include "fill_group.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FASTINIT_HAVE_AVX2_PATH 1
#else
#define FASTINIT_HAVE_AVX2_PATH 0
#endif

namespace fastinit {
namespace {

constexpr int64_t CHUNK = int64_t{1} << 15;  // elements per parallel work item (128 KiB of float32)
// Groups at least this large are written with non-temporal stores: they cannot stay in cache
// anyway, and streaming stores skip the read-for-ownership that would halve write bandwidth.
constexpr int64_t STREAM_BYTES = int64_t{32} << 20;

// ---------------------------------------------------------------- scalar path

template <typename T>
inline T to_out(float v) {
  return static_cast<T>(v);
}
template <>
inline c10::Half to_out<c10::Half>(float v) {
  return c10::Half(v);  // round to nearest even, as Tensor.to(float16)
}
template <>
inline c10::BFloat16 to_out<c10::BFloat16>(float v) {
  return c10::BFloat16(v);  // round to nearest even, as Tensor.to(bfloat16)
}

// A random kind's value in the output dtype (float64 outputs compute in double: stream contract v2).
template <typename T>
inline T random_out(const TensorJob& job, uint32_t word) {
  if constexpr (std::is_same_v<T, double>) {
    return random_value64(job.kind, word, job.rand, job.rand64);
  } else {
    return to_out<T>(random_value(job.kind, word, job.rand));
  }
}

// Elements [g, g + n) of a run of consecutive global indices, one Philox call per quad touched.
template <typename T>
void random_scalar(T* dst, int64_t g, int64_t n, const TensorJob& job, uint64_t seed) {
  while (n > 0) {
    const int64_t lane = g & 3;
    const int64_t take = std::min<int64_t>(4 - lane, n);
    const Quad w = stream_quad(static_cast<uint64_t>(g >> 2), job.key, seed);
    for (int64_t i = 0; i < take; ++i) dst[i] = random_out<T>(job, w.x[lane + i]);
    dst += take;
    g += take;
    n -= take;
  }
}

template <typename T>
void dirac_run(T* dst, int64_t g, int64_t n, const TensorJob& job) {
  for (int64_t i = 0; i < n; ++i) dst[i] = to_out<T>(dirac_value(g + i, job.dirac));
}

template <typename T>
T constant_value(double v) {
  // As Tensor.fill_: double straight to float64/float32, half types through float32.
  if constexpr (std::is_same_v<T, double>) {
    return v;
  } else {
    return to_out<T>(static_cast<float>(v));
  }
}

// ---------------------------------------------------------------- AVX2 path
#if FASTINIT_HAVE_AVX2_PATH
// No "fma" in the target list: with it gcc could contract (and -ffp-contract=off forbids it anyway).
// Vectors of 4 quads per step: 4 (64 elements) keep enough independent Philox and Horner chains in flight.
// Their 16 state vectors fill the 16 ymm registers, so GCC keeps some c1 / c3 words on the stack (a store,
// and a load folded into the next round's vpxor); 3 vectors spill less (22 stack stores per 48 elements
// against 58 per 64) but ran 15-20 % slower for the uniform on Zen 4 (one thread, best of 4 runs), 2 and 8
// slower still. 2026-12-02, AMD EPYC Zen 4 with the AVX2 path forced.
constexpr int BLOCK_VECTORS = 4;
#define FI_AVX2_ENTRY __attribute__((target("avx2,f16c")))
#define FI_AVX2 __attribute__((target("avx2,f16c"), always_inline)) inline

// The vector code works on N independent vectors at once, each step applied to all N before the
// next: its chains are latency-bound (Philox mul -> shift -> xor; Horner mul -> add, 6 cycles on
// Zen 3), and N chains in flight keep the pipes busy.
#define FI_EACH _Pragma("GCC unroll 16") for (int i = 0; i < N; ++i)

// An empty asm that takes and returns all N vectors in registers: GCC must finish this step of
// every chain before starting the next one. Without it GCC emits each chain whole, one after the
// other (seen in objdump), and the out-of-order window cannot cover 8 chains of 6-cycle Horner
// steps. Costs no instruction. Measured on Zen 3: normal -17% cycles, uniform -5%.
template <typename V, int N>
FI_AVX2 void interleave_point(V (&p)[N]) {
  if constexpr (N == 8) {
    asm("" : "+x"(p[0]), "+x"(p[1]), "+x"(p[2]), "+x"(p[3]), "+x"(p[4]), "+x"(p[5]), "+x"(p[6]), "+x"(p[7]));
  } else if constexpr (N == 6) {
    asm("" : "+x"(p[0]), "+x"(p[1]), "+x"(p[2]), "+x"(p[3]), "+x"(p[4]), "+x"(p[5]));
  } else if constexpr (N == 4) {
    asm("" : "+x"(p[0]), "+x"(p[1]), "+x"(p[2]), "+x"(p[3]));
  } else if constexpr (N == 3) {
    asm("" : "+x"(p[0]), "+x"(p[1]), "+x"(p[2]));
  } else {
    FI_EACH asm("" : "+x"(p[i]));
  }
}

// Stream words of quads q0 .. q0 + 4*NV - 1, in element order: words[2v], words[2v+1] hold the 16
// elements of quads q0+4v .. q0+4v+3. Each 64-bit lane carries one quad's counter word in its low
// half; vpmuludq reads only low halves, so the high halves may hold garbage until the final pack.
// Rounds 1 and 2 are partly folded into scalars as in the AVX-512 path (philox512, fill_cpu_avx512.cpp):
// in round 1, c2 and c3 are the tensor key, the same in every lane, so (hi1, lo1) and both key xors are
// scalars; in round 2, c1 is that scalar lo1. With SAME_HI (the step does not cross a multiple of 2^32
// quads), round 1's c0 = hi1 ^ (q >> 32) ^ k0 is a scalar too, and so are round 2's M0 * c0 and its c3.
template <int NV, bool SAME_HI>
FI_AVX2 void philox_avx2(uint64_t q0, const PhiloxKeys& K, __m256i (&words)[2 * NV]) {
  __m256i c0[NV], c1[NV], c2[NV], c3[NV];
  const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0);
  const __m256i m1 = _mm256_set1_epi64x(PHILOX_M1);
  const __m256i x2 = _mm256_set1_epi64x(K.key_hi ^ K.k1[0]);
  const __m256i y0 = _mm256_set1_epi64x(K.lo1 ^ K.k0[1]);
  // 64-bit lane i holds quad q0 + 4v + (0, 2, 1, 3)[i], so that the final unpacklo / unpackhi (which work
  // inside 128-bit lanes) leave quads 0, 1 and 2, 3 in element order without a cross-lane permute.
  const __m256i step = _mm256_set_epi64x(3, 1, 2, 0);
  if constexpr (SAME_HI) {
    const uint32_t c0s = K.hi1 ^ static_cast<uint32_t>(q0 >> 32) ^ static_cast<uint32_t>(K.k0[0]);
    uint32_t hi0s, lo0s;
    mulhilo32(PHILOX_M0, c0s, hi0s, lo0s);
    const __m256i z2 = _mm256_set1_epi64x(hi0s ^ static_cast<uint32_t>(K.k1[1]));
    const __m256i c3s = _mm256_set1_epi64x(lo0s);
    for (int v = 0; v < NV; ++v) {
      const __m256i q = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<int64_t>(q0 + 4 * v)), step);
      const __m256i p0 = _mm256_mul_epu32(q, m0);
      // round 1: c0 = c0s, c1 = lo1, c2 = hi0 ^ c3 ^ k1, c3 = lo0 (in p0's low half)
      const __m256i r1c2 = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), x2);
      // round 2: c0 = hi(M1 * c2) ^ lo1 ^ k0, c1 = lo(M1 * c2), c2 = hi0s ^ c3 ^ k1, c3 = lo0s
      const __m256i p1 = _mm256_mul_epu32(r1c2, m1);
      c0[v] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), y0);
      c1[v] = p1;
      c2[v] = _mm256_xor_si256(p0, z2);
      c3[v] = c3s;
    }
  } else {
    const __m256i x0 = _mm256_set1_epi64x(K.hi1 ^ K.k0[0]);
    const __m256i kk1 = _mm256_set1_epi64x(K.k1[1]);
    for (int v = 0; v < NV; ++v) {
      const __m256i q = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<int64_t>(q0 + 4 * v)), step);
      const __m256i p0 = _mm256_mul_epu32(q, m0);
      const __m256i r1c0 = _mm256_xor_si256(_mm256_srli_epi64(q, 32), x0);  // hi1 ^ c1 ^ k0, c1 = q >> 32
      const __m256i r1c2 = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), x2);  // hi0 ^ c3 ^ k1
      const __m256i q0p = _mm256_mul_epu32(r1c0, m0);
      const __m256i p1 = _mm256_mul_epu32(r1c2, m1);
      c0[v] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), y0);
      c1[v] = p1;
      c2[v] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(q0p, 32), p0), kk1);
      c3[v] = q0p;
    }
  }
#pragma GCC unroll 8
  for (int r = 2; r < 10; ++r) {
    const __m256i kk0 = _mm256_set1_epi64x(static_cast<int64_t>(K.k0[r]));
    const __m256i kk1 = _mm256_set1_epi64x(static_cast<int64_t>(K.k1[r]));
    for (int v = 0; v < NV; ++v) {
      const __m256i p0 = _mm256_mul_epu32(c0[v], m0);
      const __m256i p1 = _mm256_mul_epu32(c2[v], m1);
      c0[v] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1[v]), kk0);
      c2[v] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3[v]), kk1);
      c1[v] = p1;
      c3[v] = p0;
    }
    interleave_point(c0);  // keep the 2 * NV chains of each round together
    interleave_point(c2);
  }
  for (int v = 0; v < NV; ++v) {
    const __m256i a = _mm256_blend_epi32(c0[v], _mm256_slli_epi64(c1[v], 32), 0xAA);  // x0 x1 per quad
    const __m256i b = _mm256_blend_epi32(c2[v], _mm256_slli_epi64(c3[v], 32), 0xAA);  // x2 x3 per quad
    words[2 * v] = _mm256_unpacklo_epi64(a, b);      // quads 0, 1 (lanes 0, 2)
    words[2 * v + 1] = _mm256_unpackhi_epi64(a, b);  // quads 2, 3 (lanes 1, 3)
  }
}

// Exact integer forms of float steps. The normal transform is bound by the two FP multiply pipes
// (which also run vpmuludq for Philox), so a multiply by a power of two whose result is known to be
// a normal float is done as an integer add to the exponent field instead: same bits, and the
// integer op can issue on any vector pipe.

// t = n * 2^8 with n = s * 2^23 the odd integer of the word x, as an int32: (x | 0x1FF) ^ 0x800000FF
// (scaled_int512 of the AVX-512 path, proof there; one vpternlogd there, two ops here).
FI_AVX2 __m256i scaled_int_avx2(__m256i x) {
  return _mm256_xor_si256(_mm256_or_si256(x, _mm256_set1_epi32(0x1FF)), _mm256_set1_epi32(static_cast<int>(0x800000FFu)));
}

// symmetric_uniform: cvt(n * 2^8) is exact (|n * 2^8| < 2^31 with at most 24 significant bits) and a normal
// float with exponent >= 8, so the multiply by 2^-31 is "exponent - 31".
FI_AVX2 __m256 symmetric_uniform_avx2(__m256i x) {
  const __m256 f = _mm256_cvtepi32_ps(scaled_int_avx2(x));
  return _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(f), _mm256_set1_epi32(31 << 23)));
}

// p[i] <- Horner of c at y[i]. y is read from memory (an operand of vmulps), so all N accumulators
// plus a coefficient fit the 16 ymm registers for N = 8.
template <int N>
FI_AVX2 void horner9_avx2(const float (&c)[POLY_TERMS], const __m256 (&y)[N], __m256 (&p)[N]) {
  FI_EACH p[i] = _mm256_set1_ps(c[0]);
#pragma GCC unroll 9
  for (int k = 1; k < POLY_TERMS; ++k) {
    const __m256 ck = _mm256_set1_ps(c[k]);
    FI_EACH p[i] = _mm256_add_ps(_mm256_mul_ps(p[i], y[i]), ck);
    interleave_point(p);
  }
}

// Normal values of N vectors of stream words, operation for operation as normal_value() with
// log_f32/erfinv_f32 inlined.
// ZONLY: stop at z (float64 outputs finish in double, store16_f64).
template <bool PLAIN, bool ZONLY, int N>
FI_AVX2 void normal_avx2(const __m256i (&words)[N], const RandParams& prm, __m256 (&out)[N]) {
  static constexpr float LOG_P[POLY_TERMS] = FASTINIT_LOG_P;
  static constexpr float CENTRAL[POLY_TERMS] = FASTINIT_ERFINV_CENTRAL;
  static constexpr float TAIL[POLY_TERMS] = FASTINIT_ERFINV_TAIL;
  // Each step is applied to all N vectors, then pinned (see interleave_point), so N independent
  // chains are always in flight.
#define FI_STEP(dst, expr) \
  FI_EACH dst[i] = (expr); \
  interleave_point(dst)
  __m256 x[N], f[N], z[N], ef[N], w[N], a[N], t[N];
  __m256i b[N], big[N], e[N];
  const __m256 one = _mm256_set1_ps(1.0f);
  FI_STEP(x, symmetric_uniform_avx2(words[i]));
  if constexpr (!PLAIN) {
    FI_STEP(x, _mm256_add_ps(_mm256_mul_ps(x[i], _mm256_set1_ps(prm.half_width)), _mm256_set1_ps(prm.center)));
    FI_STEP(x, _mm256_min_ps(_mm256_set1_ps(X_MAX), _mm256_max_ps(_mm256_set1_ps(-X_MAX), x[i])));
  }
  // log_f32(t), t = (1 - x)(1 + x) in (0, 1]: split t = 2^e * m with m in [sqrt2/2, sqrt2].
  FI_STEP(a, _mm256_sub_ps(one, x[i]));
  FI_STEP(t, _mm256_add_ps(one, x[i]));
  FI_STEP(t, _mm256_mul_ps(a[i], t[i]));
  FI_STEP(b, _mm256_and_si256(_mm256_castps_si256(t[i]), _mm256_set1_epi32(0x7FFFFF)));
  // m > SQRT2 compared as integers (same sign and exponent); big lanes are all ones.
  FI_STEP(big, _mm256_cmpgt_epi32(b[i], _mm256_set1_epi32(0x3504F3)));
  // m * 0.5 on big lanes (exact: m in (sqrt2, 2)) and e + 1 there, as integer ops.
  FI_STEP(b, _mm256_or_si256(b[i], _mm256_set1_epi32(0x3F800000)));
  FI_STEP(e, _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(t[i]), 23), _mm256_set1_epi32(127)));
  FI_STEP(b, _mm256_sub_epi32(b[i], _mm256_and_si256(big[i], _mm256_set1_epi32(1 << 23))));
  FI_STEP(e, _mm256_sub_epi32(e[i], big[i]));
  FI_STEP(f, _mm256_sub_ps(_mm256_castsi256_ps(b[i]), one));
  FI_STEP(ef, _mm256_cvtepi32_ps(e[i]));
  FI_STEP(z, _mm256_mul_ps(f[i], f[i]));
  __m256 r[N];
  horner9_avx2<N>(LOG_P, f, r);
  FI_STEP(r, _mm256_mul_ps(r[i], f[i]));
  FI_STEP(r, _mm256_mul_ps(r[i], z[i]));
  FI_STEP(a, _mm256_mul_ps(ef[i], _mm256_set1_ps(LN2_LO)));
  FI_STEP(r, _mm256_add_ps(r[i], a[i]));
  FI_STEP(a, _mm256_mul_ps(z[i], _mm256_set1_ps(0.5f)));
  FI_STEP(r, _mm256_sub_ps(r[i], a[i]));
  FI_STEP(r, _mm256_add_ps(f[i], r[i]));
  FI_STEP(a, _mm256_mul_ps(ef[i], _mm256_set1_ps(LN2_HI)));
  FI_STEP(r, _mm256_add_ps(r[i], a[i]));
  FI_STEP(w, _mm256_xor_ps(r[i], _mm256_set1_ps(-0.0f)));  // w = -log(t), exact negation
  FI_STEP(f, _mm256_sub_ps(w[i], _mm256_set1_ps(2.5f)));   // f is dead: reuse it for the central argument
  horner9_avx2<N>(CENTRAL, f, r);
  // The tail branch is needed by ~0.3% of elements: skip it for vectors where no lane takes it.
  FI_EACH {
    const __m256 central = _mm256_cmp_ps(w[i], _mm256_set1_ps(5.0f), _CMP_LT_OQ);
    if (__builtin_expect(_mm256_movemask_ps(central) != 0xFF, 0)) {
      __m256 u[1] = {_mm256_sub_ps(_mm256_sqrt_ps(w[i]), _mm256_set1_ps(3.0f))};
      __m256 tail[1];
      horner9_avx2<1>(TAIL, u, tail);
      r[i] = _mm256_blendv_ps(tail[0], r[i], central);
    }
  }
  FI_STEP(out, _mm256_mul_ps(r[i], x[i]));
  FI_STEP(out, _mm256_mul_ps(out[i], _mm256_set1_ps(SQRT2)));
  if constexpr (ZONLY) return;
  FI_STEP(out, _mm256_mul_ps(out[i], _mm256_set1_ps(prm.std)));
  FI_STEP(out, _mm256_add_ps(out[i], _mm256_set1_ps(prm.mean)));
  if constexpr (!PLAIN) {
    // max(x, lo) then min(., hi) keeping x on ties, as f_max/f_min (MAXPS returns its second operand then).
    FI_STEP(out, _mm256_min_ps(_mm256_set1_ps(prm.high), _mm256_max_ps(_mm256_set1_ps(prm.low), out[i])));
  }
#undef FI_STEP
}

// Values of a random kind from N vectors of stream words (element order kept), one variant V per template
// (fill_cpu_simd.h: U_GEN, U_FOLD, ..., N_PLAIN, and the proofs of their shortcuts). With F64 (float64
// outputs) the result is the float32 stage the double finish starts from: s for the uniform, z for the
// normal (store4_f64 does the rest).
template <int V, bool F64, int N>
FI_AVX2 void values_avx2(const __m256i (&words)[N], const RandParams& p, __m256 (&v)[N]) {
  if constexpr (is_normal(V)) {
    normal_avx2<V == N_PLAIN, F64, N>(words, p, v);
  } else if constexpr (F64) {
    FI_EACH v[i] = symmetric_uniform_avx2(words[i]);
  } else {
    if constexpr ((V & U_FOLD) != 0) {
      // uniform_scale_folds(): round(cvt(n * 2^8) * (h * 2^-31)) == round(s * h), and + c (c = +-0) is v
      const __m256 hs = _mm256_set1_ps(f_mul(p.half_width, 0x1p-31f));
      FI_EACH v[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(scaled_int_avx2(words[i])), hs);
      if constexpr ((V & U_ADDC) != 0) {
        const __m256 c = _mm256_set1_ps(p.center);
        FI_EACH v[i] = _mm256_add_ps(v[i], c);
      }
    } else {
      const __m256 h = _mm256_set1_ps(p.half_width);
      const __m256 c = _mm256_set1_ps(p.center);
      FI_EACH v[i] = _mm256_add_ps(_mm256_mul_ps(symmetric_uniform_avx2(words[i]), h), c);
    }
    // f_min(f_max(v, lo), hi), a side at a time (MAXPS / MINPS return their second operand, v, on ties)
    if constexpr ((V & U_LO) != 0) {
      const __m256 lo = _mm256_set1_ps(p.low);
      FI_EACH v[i] = _mm256_max_ps(lo, v[i]);
    }
    if constexpr ((V & U_HI) != 0) {
      const __m256 hi = _mm256_set1_ps(p.high);
      FI_EACH v[i] = _mm256_min_ps(hi, v[i]);
    }
  }
}

// bfloat16 bits of 8 floats, rounded to nearest even (NaN -> 0x7FC0), as c10::BFloat16(float).
FI_AVX2 __m256i bf16_bits_avx2(__m256 v) {
  const __m256i b = _mm256_castps_si256(v);
  const __m256i bias = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1)),
                                        _mm256_set1_epi32(0x7FFF));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(b, bias), 16);
  const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), _mm256_castps_si256(nan));
}

template <bool NT>
FI_AVX2 void store256(void* p, __m256i v) {
  if constexpr (NT) {
    _mm256_stream_si256(static_cast<__m256i*>(p), v);
  } else {
    _mm256_storeu_si256(static_cast<__m256i*>(p), v);
  }
}
template <bool NT>
FI_AVX2 void store128(void* p, __m128i v) {
  if constexpr (NT) {
    _mm_stream_si128(static_cast<__m128i*>(p), v);
  } else {
    _mm_storeu_si128(static_cast<__m128i*>(p), v);
  }
}

// Store 16 consecutive values (a: elements 0..7, b: 8..15) as T. NT needs dst 32-byte aligned.
template <typename T, bool NT>
FI_AVX2 void store16(T* dst, __m256 a, __m256 b) {
  if constexpr (std::is_same_v<T, float>) {
    store256<NT>(dst, _mm256_castps_si256(a));
    store256<NT>(dst + 8, _mm256_castps_si256(b));
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
    const __m256i packed = _mm256_packus_epi32(bf16_bits_avx2(a), bf16_bits_avx2(b));  // a0-3 b0-3 | a4-7 b4-7
    store256<NT>(dst, _mm256_permute4x64_epi64(packed, 0xD8));
  } else {
    static_assert(std::is_same_v<T, c10::Half>);
    store128<NT>(dst, _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    store128<NT>(dst + 8, _mm256_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// float64 outputs: 4 values of the float32 stage (s or z, exact in double) finished in double as
// uniform_value64 / normal_value64: one multiply, one add (never fused: no FMA in the target list),
// the clamp as d_max/d_min (MAXPD returns its second operand on ties).
template <int V, bool NT>
FI_AVX2 void store4_f64(double* dst, __m128 stage, const RandParams64& d) {
  __m256d x = _mm256_cvtps_pd(stage);
  if constexpr (is_normal(V)) {
    x = _mm256_add_pd(_mm256_mul_pd(x, _mm256_set1_pd(d.std)), _mm256_set1_pd(d.mean));
  } else {
    x = _mm256_add_pd(_mm256_mul_pd(x, _mm256_set1_pd(d.half_width)), _mm256_set1_pd(d.center));
  }
  if constexpr (V != N_PLAIN) {
    x = _mm256_min_pd(_mm256_set1_pd(d.high), _mm256_max_pd(_mm256_set1_pd(d.low), x));
  }
  store256<NT>(dst, _mm256_castpd_si256(x));
}

template <typename T, int V, int NV, bool NT>
FI_AVX2_ENTRY void quads_avx2(T* dst, uint64_t q, int64_t steps, const TensorJob& job, const PhiloxKeys& keys) {
  constexpr bool F64 = std::is_same_v<T, double>;
  for (int64_t i = 0; i < steps; ++i, q += 4 * NV, dst += 16 * NV) {
    __m256i words[2 * NV];
    if (__builtin_expect((q >> 32) == ((q + 4 * NV - 1) >> 32), 1)) {
      philox_avx2<NV, true>(q, keys, words);
    } else {
      philox_avx2<NV, false>(q, keys, words);
    }
    __m256 v[2 * NV];
    values_avx2<V, F64, 2 * NV>(words, job.rand, v);
    for (int k = 0; k < 2 * NV; ++k) {
      if constexpr (F64) {
        store4_f64<V, NT>(dst + 8 * k, _mm256_castps256_ps128(v[k]), job.rand64);
        store4_f64<V, NT>(dst + 8 * k + 4, _mm256_extractf128_ps(v[k], 1), job.rand64);
      } else if (k % 2 == 0) {
        store16<T, NT>(dst + 8 * k, v[k], v[k + 1]);
      }
    }
  }
}

// Full quads starting at global quad q: returns how many it wrote (a multiple of 4; the caller does the rest).
template <typename T, int V>
int64_t random_quads_avx2(T* dst, uint64_t q, int64_t nquads, const TensorJob& job, uint64_t seed, bool stream) {
  constexpr int NV = BLOCK_VECTORS;
  const PhiloxKeys keys = make_keys(job.key, seed);
  // Non-temporal stores need 32-byte alignment; element alignment of T is guaranteed, so a
  // misaligned start stays misaligned for the whole run and takes regular stores.
  const bool nt = stream && (reinterpret_cast<uintptr_t>(dst) & 31) == 0;
  const int64_t big = nquads / (4 * NV);
  const int64_t small = (nquads - 4 * NV * big) / 4;
  if (nt) {
    quads_avx2<T, V, NV, true>(dst, q, big, job, keys);
  } else {
    quads_avx2<T, V, NV, false>(dst, q, big, job, keys);
  }
  quads_avx2<T, V, 1, false>(dst + 16 * NV * big, q + 4 * NV * big, small, job, keys);
  return 4 * NV * big + 4 * small;
}

bool cpu_has_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return ok;
}
#else
bool cpu_has_avx2() { return false; }
#endif  // FASTINIT_HAVE_AVX2_PATH

// ---------------------------------------------------------------- runs, chunks, the group

struct Mode {
  SimdPath path;  // the code path for full quads
  bool stream;    // non-temporal stores for this group
};

template <typename T>
constexpr OutType out_type() {
  if constexpr (std::is_same_v<T, float>) {
    return OUT_F32;
  } else if constexpr (std::is_same_v<T, double>) {
    return OUT_F64;
  } else if constexpr (std::is_same_v<T, c10::Half>) {
    return OUT_F16;
  } else {
    static_assert(std::is_same_v<T, c10::BFloat16>);
    return OUT_BF16;
  }
}

#if FASTINIT_HAVE_AVX2_PATH
template <typename T>
int64_t random_quads_avx2_any(T* dst, uint64_t q, int64_t nq, const TensorJob& job, uint64_t seed, bool stream) {
  return with_job_variant<std::is_same_v<T, double>>(job, false, [&](auto v) {
    return random_quads_avx2<T, decltype(v)::value>(dst, q, nq, job, seed, stream);
  });
}
#endif

// Elements [g, g + n) of one run of consecutive global indices, written to dst[0 .. n).
template <typename T>
void random_run(T* dst, int64_t g, int64_t n, const TensorJob& job, uint64_t seed, Mode mode) {
  const int64_t head = std::min<int64_t>(n, (4 - (g & 3)) & 3);
  random_scalar(dst, g, head, job, seed);
  dst += head;
  g += head;
  n -= head;
  if (mode.path != SIMD_SCALAR && n >= 16) {
    const int64_t nq = n >> 2;
    int64_t done = 0;
    if (mode.path == SIMD_AVX512) {
      done = random_quads_avx512(out_type<T>(), dst, static_cast<uint64_t>(g >> 2), nq, job, seed, mode.stream);
    }
#if FASTINIT_HAVE_AVX2_PATH
    else {
      done = random_quads_avx2_any<T>(dst, static_cast<uint64_t>(g >> 2), nq, job, seed, mode.stream);
    }
#endif
    dst += 4 * done;
    g += 4 * done;
    n -= 4 * done;
  }
  random_scalar(dst, g, n, job, seed);
}

// Local elements [j0, j1) of one output.
template <typename T>
void fill_range(const TensorJob& job, int64_t j0, int64_t j1, uint64_t seed, Mode mode) {
  T* out = static_cast<T*>(job.data);
  if (job.kind == KIND_CONSTANT) {
    std::fill(out + j0, out + j1, constant_value<T>(job.value));
    return;
  }
  for (int64_t j = j0; j < j1;) {
    const int64_t run = j / job.row_len;
    const int64_t end = std::min(j1, (run + 1) * job.row_len);
    const int64_t g = job.base + run * job.row_stride + (j - run * job.row_len);
    if (job.kind == KIND_DIRAC) {
      dirac_run(out + j, g, end - j, job);
    } else {
      random_run(out + j, g, end - j, job, seed, mode);
    }
    j = end;
  }
}

// Where chunk boundary `pos` of the concatenated element range goes: moved back to the start of
// its global quad (within the same run), so each Philox quad is computed by one chunk only.
int64_t aligned_boundary(const std::vector<TensorJob>& jobs, const std::vector<int64_t>& prefix, int64_t pos) {
  const auto t = static_cast<size_t>(std::upper_bound(prefix.begin(), prefix.end(), pos) - prefix.begin() - 1);
  const TensorJob& job = jobs[t];
  const int64_t j = pos - prefix[t];
  if (job.kind == KIND_CONSTANT) return pos;
  const int64_t g = global_index(j, job.base, job.row_len, job.row_stride);
  return pos - std::min(g & 3, j % job.row_len);
}

template <typename T>
void fill_group_typed(const std::vector<TensorJob>& jobs, uint64_t seed, Mode mode) {
  std::vector<int64_t> prefix(jobs.size() + 1, 0);
  for (size_t t = 0; t < jobs.size(); ++t) prefix[t + 1] = prefix[t] + jobs[t].numel;
  const int64_t total = prefix.back();
  if (total == 0) return;
  const int64_t nchunks = (total + CHUNK - 1) / CHUNK;
  std::vector<int64_t> bounds(nchunks + 1);
  bounds[0] = 0;
  bounds[nchunks] = total;
  for (int64_t k = 1; k < nchunks; ++k) bounds[k] = aligned_boundary(jobs, prefix, k * CHUNK);

  // Chunks are handed out one at a time from a shared counter, not as one contiguous range per thread
  // (at::parallel_for's static split): a normal element costs ~3 uniform ones, so a static split of a model
  // whose embedding (normal) comes first left one thread with all of it (GPT-2-XL: 0.37 s against ~0.33 s
  // balanced). Which thread writes a chunk does not change its values.
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), nchunks);
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < nchunks;) {
      int64_t lo = bounds[k];
      const int64_t hi = bounds[k + 1];
      auto t = static_cast<size_t>(std::upper_bound(prefix.begin(), prefix.end(), lo) - prefix.begin() - 1);
      for (; lo < hi; ++t) {
        const int64_t stop = std::min(hi, prefix[t + 1]);
        if (stop > lo) fill_range<T>(jobs[t], lo - prefix[t], stop - prefix[t], seed, mode);
        lo = std::max(lo, stop);
      }
    }
    // Non-temporal stores are weakly ordered: fence before the caller's threads read the data.
    if (mode.stream && mode.path == SIMD_AVX512) avx512_store_fence();
#if FASTINIT_HAVE_AVX2_PATH
    if (mode.stream && mode.path == SIMD_AVX2) _mm_sfence();
#endif
  });
}

const char* path_name(SimdPath p) { return p == SIMD_AVX512 ? "avx512" : p == SIMD_AVX2 ? "avx2" : "scalar"; }

bool cpu_has(SimdPath p) { return p == SIMD_SCALAR || (p == SIMD_AVX2 && cpu_has_avx2()) || (p == SIMD_AVX512 && cpu_has_avx512()); }

// The path fill_group runs now: FASTINIT_CPU_SIMD if set (scalar or 0, avx2, avx512; auto or 1 = the
// best this CPU has), else the best this CPU has. A forced path the CPU lacks, or an unknown value,
// raises: running another path silently would hide what the caller asked to test or measure.
SimdPath selected_path() {
  const char* v = std::getenv("FASTINIT_CPU_SIMD");
  const SimdPath best = cpu_has_avx512() ? SIMD_AVX512 : cpu_has_avx2() ? SIMD_AVX2 : SIMD_SCALAR;
  if (v == nullptr || *v == 0 || std::strcmp(v, "auto") == 0 || std::strcmp(v, "1") == 0) return best;
  SimdPath want;
  if (std::strcmp(v, "0") == 0 || std::strcmp(v, "scalar") == 0) {
    want = SIMD_SCALAR;
  } else if (std::strcmp(v, "avx2") == 0) {
    want = SIMD_AVX2;
  } else if (std::strcmp(v, "avx512") == 0) {
    want = SIMD_AVX512;
  } else {
    TORCH_CHECK(false, "FASTINIT_CPU_SIMD=", v, " is not one of auto, scalar (or 0), avx2, avx512");
  }
  TORCH_CHECK(cpu_has(want), "FASTINIT_CPU_SIMD=", v, " but this CPU lacks ",
              want == SIMD_AVX512 ? "avx512f/avx512bw/avx512vl/avx512dq" : "avx2/f16c",
              " (fastinit never runs a SIMD path the CPU does not have)");
  return want;
}

// Python: torch.ops.fastinit._cpu_simd_path() -> the path fill_group would run now.
std::string cpu_simd_path() { return path_name(selected_path()); }

// Tests only: float32 -> bfloat16 through the AVX-512 path's rounding (native: the vcvtne2ps2bf16 variant).
at::Tensor avx512_bf16_round(const at::Tensor& src, bool native) {
  TORCH_CHECK(src.scalar_type() == at::kFloat && src.device().is_cpu(),
              "fastinit::_avx512_bf16_round takes a float32 CPU tensor");
  const at::Tensor in = src.contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options().dtype(at::kBFloat16));
  const bool ran = avx512_bf16_convert(in.const_data_ptr<float>(), reinterpret_cast<uint16_t*>(out.data_ptr()),
                                       in.numel(), native);
  TORCH_CHECK(ran, "fastinit::_avx512_bf16_round: this CPU lacks ", native ? "avx512_bf16" : "avx512f/bw/vl/dq");
  return out;
}

// Python: torch.ops.fastinit._cpu_simd_paths() -> every path this CPU can run, slowest first.
std::vector<std::string> cpu_simd_paths() {
  std::vector<std::string> out;
  for (SimdPath p : {SIMD_SCALAR, SIMD_AVX2, SIMD_AVX512}) {
    if (cpu_has(p)) out.emplace_back(path_name(p));
  }
  return out;
}

void fill_group_cpu(at::TensorList outs, const at::Tensor& table, const at::Tensor& params, int64_t seed) {
  const std::vector<TensorJob> jobs = parse_fill_group(outs, table, params);
  if (jobs.empty()) return;
  TORCH_CHECK(outs[0].device().is_cpu(), "fastinit::fill_group (CPU kernel): outputs must be CPU tensors, got ",
              outs[0].device());
  const auto dtype = outs[0].scalar_type();
  int64_t total_bytes = 0;
  for (const auto& o : outs) total_bytes += o.numel() * static_cast<int64_t>(o.element_size());
  const Mode mode{selected_path(), total_bytes >= STREAM_BYTES};
  const auto useed = static_cast<uint64_t>(seed);
  switch (dtype) {
    case at::kFloat:
      fill_group_typed<float>(jobs, useed, mode);
      break;
    case at::kDouble:
      fill_group_typed<double>(jobs, useed, mode);
      break;
    case at::kHalf:
      fill_group_typed<c10::Half>(jobs, useed, mode);
      break;
    case at::kBFloat16:
      fill_group_typed<c10::BFloat16>(jobs, useed, mode);
      break;
    default:
      TORCH_CHECK(false, "fastinit::fill_group: unsupported dtype ", dtype);
  }
}

}  // namespace
}  // namespace fastinit

TORCH_LIBRARY_IMPL(fastinit, CPU, m) { m.impl("fill_group", &fastinit::fill_group_cpu); }

TORCH_LIBRARY_FRAGMENT(fastinit, m) {
  m.def("_cpu_simd_path() -> str", &fastinit::cpu_simd_path);
  m.def("_cpu_simd_paths() -> str[]", &fastinit::cpu_simd_paths);
  m.def("_avx512_bf16_round(Tensor src, bool native) -> Tensor", &fastinit::avx512_bf16_round);
}
