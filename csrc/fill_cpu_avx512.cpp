// The CPU kernel's AVX-512 path: full quads of a run of consecutive global indices (fill_cpu.cpp does
// the run edges, the chunks and the threads).
//
// Every function here carries a target attribute; the translation unit itself is compiled for the
// baseline ISA, and cpu_has_avx512() (cpuid, with the OS's zmm state) gates every call, so nothing
// AVX-512 ever runs on a CPU without it. No ATen header is included (an inline function of one compiled
// here for AVX-512 could be the copy the linker keeps).
//
// Bitwise contract: each value is the one fastinit_stream.h computes (docs/STREAM.md, contract v2). The
// code repeats those float operations one for one in 16-lane vectors, except for shortcuts whose
// exactness is argued where they are used (and tested: tests/test_cpu_kernel.py). No FMA: the build
// passes -ffp-contract=off and every multiply and add is its own intrinsic.
//
// Layout: Philox runs on 8 quads per zmm, one quad's counter word in the low half of each 64-bit lane
// (vpmuludq reads only low halves, so high halves may hold garbage until the final pack); NV such
// vectors (8 * NV quads, 32 * NV elements) per step keep enough independent multiply chains in flight.
#include "fill_cpu_simd.h"

#include <cstring>
#include <type_traits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FASTINIT_HAVE_AVX512_PATH 1
#else
#define FASTINIT_HAVE_AVX512_PATH 0
#endif

#ifdef __FAST_MATH__
#error "fastinit's kernels must be compiled without -ffast-math (the stream is bitwise specified)"
#endif

namespace fastinit {

#if FASTINIT_HAVE_AVX512_PATH
// GCC 12 warns that the undefined vector inside its own _mm512_set1_* "may be used uninitialized": a
// known false positive of the intrinsic headers (every lane is then written), not of this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

#define FI512_TARGET "avx512f,avx512bw,avx512vl,avx512dq"
#define FI512 __attribute__((target(FI512_TARGET), always_inline)) inline
#define FI512_ENTRY __attribute__((target(FI512_TARGET)))
#define FI_EACH _Pragma("GCC unroll 16") for (int i = 0; i < N; ++i)

// Storage types of the 16-bit outputs (only their bits are written here).
struct HalfBits {
  uint16_t x;
};
struct Bf16Bits {
  uint16_t x;
};
// bfloat16 stored with vcvtne2ps2bf16 where it is exact (CPUs with avx512_bf16; see store_pair_bf16).
struct Bf16BitsNative {
  uint16_t x;
};

// An empty asm that takes and returns N vectors in registers: GCC must finish this step of every chain
// before starting the next, so N independent chains are in flight (as the AVX2 path, fill_cpu.cpp).
template <typename V, int N>
FI512 void interleave_point(V (&p)[N]) {
  if constexpr (N == 8) {
    asm("" : "+v"(p[0]), "+v"(p[1]), "+v"(p[2]), "+v"(p[3]), "+v"(p[4]), "+v"(p[5]), "+v"(p[6]), "+v"(p[7]));
  } else if constexpr (N == 6) {
    asm("" : "+v"(p[0]), "+v"(p[1]), "+v"(p[2]), "+v"(p[3]), "+v"(p[4]), "+v"(p[5]));
  } else if constexpr (N == 3) {
    asm("" : "+v"(p[0]), "+v"(p[1]), "+v"(p[2]));
  } else if constexpr (N == 4) {
    asm("" : "+v"(p[0]), "+v"(p[1]), "+v"(p[2]), "+v"(p[3]));
  } else {
    FI_EACH asm("" : "+v"(p[i]));
  }
}

// vpternlog truth tables (bit (a << 2 | b << 1 | c) of the immediate is f(a, b, c)).
constexpr int TERN_XOR3 = 0x96;    // a ^ b ^ c
constexpr int TERN_OR_XOR = 0x56;  // (a | b) ^ c
constexpr int TERN_AND_OR = 0xEA;  // (a & b) | c

// Stream words of quads q0 .. q0 + 8 * NV - 1 in element order: w[2v] holds elements 0..15 and
// w[2v + 1] elements 16..31 of quads q0 + 8v .. q0 + 8v + 7. The rounds are Random123's, with rounds 1
// and 2 partly folded into scalars: in round 1, c2 and c3 are the tensor key, the same in every lane, so
// (hi1, lo1) and both key xors are scalars; in round 2, c1 is that scalar lo1. With SAME_HI (every
// quad of the step has the same q >> 32, i.e. the step does not cross a multiple of 2^32 quads), round
// 1's c0 = hi1 ^ (q >> 32) ^ k0 is a scalar too, so round 2's M0 * c0 and the c3 it leaves are scalars.
//
// Lane order: 64-bit lane i of counter vector v holds quad q0 + 8v + LANE_QUAD[i], with LANE_QUAD =
// (0, 4, 1, 5, 2, 6, 3, 7), so that the final unpacklo / unpackhi (which work inside 128-bit lanes) put
// quads 0..3 and 4..7 in element order without a cross-lane permute.
template <int NV, bool SAME_HI>
FI512 void philox512(uint64_t q0, const PhiloxKeys& K, __m512i (&w)[2 * NV]) {
  __m512i c0[NV], c1[NV], c2[NV], c3[NV];
  const __m512i m0 = _mm512_set1_epi64(PHILOX_M0);
  const __m512i m1 = _mm512_set1_epi64(PHILOX_M1);
  const __m512i lane_quad = _mm512_set_epi64(7, 3, 6, 2, 5, 1, 4, 0);
  const __m512i x2 = _mm512_set1_epi64(K.key_hi ^ K.k1[0]);
  const __m512i y0 = _mm512_set1_epi64(K.lo1 ^ K.k0[1]);
  if constexpr (SAME_HI) {
    const uint32_t c0s = K.hi1 ^ static_cast<uint32_t>(q0 >> 32) ^ static_cast<uint32_t>(K.k0[0]);
    uint32_t hi0s, lo0s;
    mulhilo32(PHILOX_M0, c0s, hi0s, lo0s);
    const __m512i z2 = _mm512_set1_epi64(hi0s ^ static_cast<uint32_t>(K.k1[1]));
    const __m512i c3s = _mm512_set1_epi64(lo0s);
    for (int v = 0; v < NV; ++v) {
      const __m512i q = _mm512_add_epi64(_mm512_set1_epi64(static_cast<int64_t>(q0 + 8 * v)), lane_quad);
      const __m512i p0 = _mm512_mul_epu32(q, m0);
      // round 1: c0 = c0s, c1 = lo1, c2 = hi0 ^ c3 ^ k1, c3 = lo0 (in p0's low half)
      const __m512i r1c2 = _mm512_xor_si512(_mm512_srli_epi64(p0, 32), x2);
      // round 2: c0 = hi(M1 * c2) ^ lo1 ^ k0, c1 = lo(M1 * c2), c2 = hi0s ^ c3 ^ k1, c3 = lo0s
      const __m512i p1 = _mm512_mul_epu32(r1c2, m1);
      c0[v] = _mm512_xor_si512(_mm512_srli_epi64(p1, 32), y0);
      c1[v] = p1;
      c2[v] = _mm512_xor_si512(p0, z2);
      c3[v] = c3s;
    }
  } else {
    const __m512i x0 = _mm512_set1_epi64(K.hi1 ^ K.k0[0]);
    const __m512i kk1 = _mm512_set1_epi64(K.k1[1]);
    for (int v = 0; v < NV; ++v) {
      const __m512i q = _mm512_add_epi64(_mm512_set1_epi64(static_cast<int64_t>(q0 + 8 * v)), lane_quad);
      const __m512i p0 = _mm512_mul_epu32(q, m0);
      const __m512i r1c0 = _mm512_xor_si512(_mm512_srli_epi64(q, 32), x0);  // hi1 ^ c1 ^ k0, c1 = q >> 32
      const __m512i r1c2 = _mm512_xor_si512(_mm512_srli_epi64(p0, 32), x2);  // hi0 ^ c3 ^ k1
      const __m512i q0p = _mm512_mul_epu32(r1c0, m0);
      const __m512i p1 = _mm512_mul_epu32(r1c2, m1);
      c0[v] = _mm512_xor_si512(_mm512_srli_epi64(p1, 32), y0);
      c1[v] = p1;
      c2[v] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(q0p, 32), p0, kk1, TERN_XOR3);
      c3[v] = q0p;
    }
  }
#pragma GCC unroll 8
  for (int r = 2; r < 10; ++r) {
    const __m512i kk0 = _mm512_set1_epi64(static_cast<int64_t>(K.k0[r]));
    const __m512i kk1 = _mm512_set1_epi64(static_cast<int64_t>(K.k1[r]));
    for (int v = 0; v < NV; ++v) {
      const __m512i p0 = _mm512_mul_epu32(c0[v], m0);
      const __m512i p1 = _mm512_mul_epu32(c2[v], m1);
      c0[v] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1[v], kk0, TERN_XOR3);
      c2[v] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3[v], kk1, TERN_XOR3);
      c1[v] = p1;
      c3[v] = p0;
    }
    interleave_point(c0);
    interleave_point(c2);
  }
  for (int v = 0; v < NV; ++v) {
    // x0 x1 / x2 x3 of each quad in one 64-bit lane: the odd dwords take c1's (c3's) low dwords
    const __m512i a = _mm512_mask_shuffle_epi32(c0[v], 0xAAAA, c1[v], _MM_PERM_CCAA);
    const __m512i b = _mm512_mask_shuffle_epi32(c2[v], 0xAAAA, c3[v], _MM_PERM_CCAA);
    w[2 * v] = _mm512_unpacklo_epi64(a, b);      // quads 0, 1, 2, 3 (lanes 0, 2, 4, 6)
    w[2 * v + 1] = _mm512_unpackhi_epi64(a, b);  // quads 4, 5, 6, 7 (lanes 1, 3, 5, 7)
  }
}

// t = n * 2^8 with n = s * 2^23 = (2m + 1) - 2^23 and m = x >> 9, as an int32, in one vpternlogd:
// bits 7..0 cleared, bit 8 set, bit 31 flipped, the others x's. Proof: t >> 8 (arithmetic) has bit 0 = 1
// (2m + 1 = (x >> 8) | 1), bits 22..1 = m's low 22 bits and bit 23 = m's top bit flipped, sign-extended.
// If m's top bit is 1, that is 2m + 1 - 2^23 >= 0; if it is 0, the 24-bit pattern 2m + 1 + 2^23 read as
// negative is 2m + 1 + 2^23 - 2^24 = 2m + 1 - 2^23. With bits 7..0 zero, t = (t >> 8) * 2^8 = n * 2^8.
// (Checked over all 2^23 m: tests/test_cpu_kernel.py.) Per bit, with B = 0x1FF and C = 0x800000FF:
// (B, C) = (0, 0) keeps x, (0, 1) flips it, (1, 0) sets it, (1, 1) clears it: (x | B) ^ C.
FI512 __m512i scaled_int512(__m512i x) {
  return _mm512_ternarylogic_epi32(x, _mm512_set1_epi32(0x1FF), _mm512_set1_epi32(static_cast<int>(0x800000FFu)),
                                   TERN_OR_XOR);
}

// s = n * 2^-23 (symmetric_uniform): cvt(n * 2^8) is exact (|n * 2^8| < 2^31 with at most 24 significant
// bits) and a normal float with exponent >= 8, so the exact multiply by 2^-31 is "exponent - 31", done
// as an integer op that runs on any vector pipe.
FI512 __m512 symmetric_uniform512(__m512i x) {
  const __m512 f = _mm512_cvtepi32_ps(scaled_int512(x));
  return _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_castps_si512(f), _mm512_set1_epi32(31 << 23)));
}

// p[i] <- Horner of c at y[i], two roundings per step (horner9).
template <int N>
FI512 void horner9_512(const float (&c)[POLY_TERMS], const __m512 (&y)[N], __m512 (&p)[N]) {
  FI_EACH p[i] = _mm512_set1_ps(c[0]);
#pragma GCC unroll 9
  for (int k = 1; k < POLY_TERMS; ++k) {
    const __m512 ck = _mm512_set1_ps(c[k]);
    FI_EACH p[i] = _mm512_add_ps(_mm512_mul_ps(p[i], y[i]), ck);
    interleave_point(p);
  }
}

// The variants (U_GEN, U_FOLD, ..., N_PLAIN) and their proofs: fill_cpu_simd.h.

// The float32 normal: z (ZONLY, float64 outputs), or v = z * std + mean clamped. normal_value() of
// fastinit_stream.h with log_f32 / erfinv_f32 inlined, op for op; comments mark the exact integer forms.
template <bool PLAIN, bool ZONLY, int N>
FI512 void normal512(const __m512i (&words)[N], const RandParams& prm, __m512 (&out)[N]) {
  static constexpr float LOG_P[POLY_TERMS] = FASTINIT_LOG_P;
  static constexpr float CENTRAL[POLY_TERMS] = FASTINIT_ERFINV_CENTRAL;
  static constexpr float TAIL[POLY_TERMS] = FASTINIT_ERFINV_TAIL;
#define FI_STEP(dst, expr) \
  FI_EACH dst[i] = (expr); \
  interleave_point(dst)
  __m512 x[N], f[N], z[N], ef[N], w[N], a[N], t[N], r[N];
  __m512i b[N], e[N];
  __mmask16 big[N];
  const __m512 one = _mm512_set1_ps(1.0f);
  FI_STEP(x, symmetric_uniform512(words[i]));
  if constexpr (!PLAIN) {
    FI_STEP(x, _mm512_add_ps(_mm512_mul_ps(x[i], _mm512_set1_ps(prm.half_width)), _mm512_set1_ps(prm.center)));
    FI_STEP(x, _mm512_min_ps(_mm512_set1_ps(X_MAX), _mm512_max_ps(_mm512_set1_ps(-X_MAX), x[i])));
  }
  // log_f32(t), t = (1 - x)(1 + x) in (0, 1]
  FI_STEP(a, _mm512_sub_ps(one, x[i]));
  FI_STEP(t, _mm512_add_ps(one, x[i]));
  FI_STEP(t, _mm512_mul_ps(a[i], t[i]));
  // m = mantissa | 1.0 in one ternlog; "m > SQRT2" compared as integers (same sign and exponent)
  FI_STEP(b, _mm512_ternarylogic_epi32(_mm512_castps_si512(t[i]), _mm512_set1_epi32(0x7FFFFF),
                                       _mm512_set1_epi32(0x3F800000), TERN_AND_OR));
  FI_EACH big[i] = _mm512_cmpgt_epi32_mask(b[i], _mm512_set1_epi32(0x3FB504F3));
  FI_STEP(e, _mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(t[i]), 23), _mm512_set1_epi32(127)));
  // m * 0.5 on big lanes (exact: m in (sqrt2, 2), the exponent field - 1) and e + 1 there
  FI_STEP(b, _mm512_mask_sub_epi32(b[i], big[i], b[i], _mm512_set1_epi32(1 << 23)));
  FI_STEP(e, _mm512_mask_add_epi32(e[i], big[i], e[i], _mm512_set1_epi32(1)));
  FI_STEP(f, _mm512_sub_ps(_mm512_castsi512_ps(b[i]), one));
  FI_STEP(ef, _mm512_cvtepi32_ps(e[i]));
  FI_STEP(z, _mm512_mul_ps(f[i], f[i]));
  horner9_512<N>(LOG_P, f, r);
  FI_STEP(r, _mm512_mul_ps(r[i], f[i]));
  FI_STEP(r, _mm512_mul_ps(r[i], z[i]));
  FI_STEP(a, _mm512_mul_ps(ef[i], _mm512_set1_ps(LN2_LO)));
  FI_STEP(r, _mm512_add_ps(r[i], a[i]));
  FI_STEP(a, _mm512_mul_ps(z[i], _mm512_set1_ps(0.5f)));
  FI_STEP(r, _mm512_sub_ps(r[i], a[i]));
  FI_STEP(r, _mm512_add_ps(f[i], r[i]));
  FI_STEP(a, _mm512_mul_ps(ef[i], _mm512_set1_ps(LN2_HI)));
  FI_STEP(r, _mm512_add_ps(r[i], a[i]));
  FI_STEP(w, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(r[i]), _mm512_set1_epi32(INT32_MIN))));
  FI_STEP(f, _mm512_sub_ps(w[i], _mm512_set1_ps(2.5f)));  // f is dead: the central argument
  horner9_512<N>(CENTRAL, f, r);
  // The tail branch (w >= 5, or NaN: "w < 5" is false) is needed by ~0.3 % of elements, ~5 % of 16-lane
  // vectors: compute it only for vectors where some lane takes it. Only the choice matters (STREAM.md).
  FI_EACH {
    const __mmask16 central = _mm512_cmp_ps_mask(w[i], _mm512_set1_ps(5.0f), _CMP_LT_OQ);
    if (__builtin_expect(central != 0xFFFF, 0)) {
      __m512 u[1] = {_mm512_sub_ps(_mm512_sqrt_ps(w[i]), _mm512_set1_ps(3.0f))};
      __m512 tail[1];
      horner9_512<1>(TAIL, u, tail);
      r[i] = _mm512_mask_blend_ps(central, tail[0], r[i]);
    }
  }
  FI_STEP(out, _mm512_mul_ps(r[i], x[i]));
  FI_STEP(out, _mm512_mul_ps(out[i], _mm512_set1_ps(SQRT2)));
  if constexpr (!ZONLY) {
    FI_STEP(out, _mm512_mul_ps(out[i], _mm512_set1_ps(prm.std)));
    FI_STEP(out, _mm512_add_ps(out[i], _mm512_set1_ps(prm.mean)));
    if constexpr (!PLAIN) {
      // max(x, lo) then min(., hi) keeping x on ties, as f_max/f_min (MAXPS returns its second operand then)
      FI_STEP(out, _mm512_min_ps(_mm512_set1_ps(prm.high), _mm512_max_ps(_mm512_set1_ps(prm.low), out[i])));
    }
  }
#undef FI_STEP
}

// Values of N word vectors: the final float32 value, or for float64 outputs (F64) the float32 stage the
// double finish starts from (s for the uniform, z for the normal).
template <int V, bool F64, int N>
FI512 void values512(const __m512i (&words)[N], const RandParams& p, __m512 (&v)[N]) {
  if constexpr (is_normal(V)) {
    normal512<V == N_PLAIN, F64, N>(words, p, v);
  } else if constexpr (F64) {
    FI_EACH v[i] = symmetric_uniform512(words[i]);
  } else {
    if constexpr ((V & U_FOLD) != 0) {
      // uniform_scale_folds(): round(cvt(n * 2^8) * (h * 2^-31)) == round(s * h), and + c (c = +-0) is v
      const __m512 hs = _mm512_set1_ps(f_mul(p.half_width, 0x1p-31f));
      FI_EACH v[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(scaled_int512(words[i])), hs);
      if constexpr ((V & U_ADDC) != 0) {
        const __m512 c = _mm512_set1_ps(p.center);
        FI_EACH v[i] = _mm512_add_ps(v[i], c);
      }
    } else {
      const __m512 h = _mm512_set1_ps(p.half_width);
      const __m512 c = _mm512_set1_ps(p.center);
      FI_EACH v[i] = _mm512_add_ps(_mm512_mul_ps(symmetric_uniform512(words[i]), h), c);
    }
    // f_min(f_max(v, lo), hi), a side at a time (MAXPS / MINPS return their second operand, v, on ties)
    if constexpr ((V & U_LO) != 0) {
      const __m512 lo = _mm512_set1_ps(p.low);
      FI_EACH v[i] = _mm512_max_ps(lo, v[i]);
    }
    if constexpr ((V & U_HI) != 0) {
      const __m512 hi = _mm512_set1_ps(p.high);
      FI_EACH v[i] = _mm512_min_ps(hi, v[i]);
    }
  }
}

template <bool NT>
FI512 void store512(void* p, __m512i v) {
  if constexpr (NT) {
    _mm512_stream_si512(static_cast<__m512i*>(p), v);
  } else {
    _mm512_storeu_si512(p, v);
  }
}
template <bool NT>
FI512 void store256(void* p, __m256i v) {
  if constexpr (NT) {
    _mm256_stream_si256(static_cast<__m256i*>(p), v);
  } else {
    _mm256_storeu_si256(static_cast<__m256i*>(p), v);
  }
}

// bfloat16 bits of 16 floats, rounded to nearest even, NaN -> 0x7FC0: c10::BFloat16(float)'s integer
// rounding, lane for lane.
FI512 __m256i bf16_bits512(__m512 v) {
  const __m512i b = _mm512_castps_si512(v);
  const __m512i bias = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1)),
                                        _mm512_set1_epi32(0x7FFF));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(b, bias), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
}

// bfloat16 bits of 32 floats (lo: elements 0..15, hi: 16..31) with vcvtne2ps2bf16 where that is exact.
// The instruction rounds to nearest even like c10::BFloat16, but treats denormal inputs as zero and does
// not canonicalize NaN; a normal or infinite input can round only to a normal, infinite or max value, the
// same bits as the integer rounding. So it is used only when no lane of either vector is a denormal or NaN
// (vfpclassps, one op per 16 lanes), else both vectors take the integer rounding; exact either way
// (checked over all 2^23 mantissas of several exponents, denormals included: tests/test_cpu_kernel.py).
// Written as inline asm so that this translation unit needs no avx512bf16 target: it runs only where
// cpu_has_avx512_bf16().
// GUARDED = false only where the host proved no value can be NaN or denormal (run_typed: the folded
// uniform), which skips the check.
constexpr int FPCLASS_NAN_OR_DENORMAL = 0x01 | 0x20 | 0x80;  // QNaN, denormal, SNaN
template <bool GUARDED = true>
FI512 __m512i bf16_pair512(__m512 lo, __m512 hi) {
  const __mmask16 odd = GUARDED ? _mm512_fpclass_ps_mask(lo, FPCLASS_NAN_OR_DENORMAL) |
                                      _mm512_fpclass_ps_mask(hi, FPCLASS_NAN_OR_DENORMAL)
                                : 0;
  if (__builtin_expect(odd == 0, 1)) {
    __m512i r;
    asm("vcvtne2ps2bf16 %2, %1, %0" : "=v"(r) : "v"(hi), "v"(lo));  // lower half from the last operand
    return r;
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(bf16_bits512(lo)), bf16_bits512(hi), 1);
}

// float64 outputs: the float32 stage (exact in double) finished as uniform_value64 / normal_value64:
// one multiply, one add, the clamp as d_max / d_min (MAXPD returns its second operand on ties).
template <int V, bool NT>
FI512 void store8_f64(double* dst, __m256 stage, const RandParams64& d) {
  __m512d x = _mm512_cvtps_pd(stage);
  if constexpr (is_normal(V)) {
    x = _mm512_add_pd(_mm512_mul_pd(x, _mm512_set1_pd(d.std)), _mm512_set1_pd(d.mean));
  } else {
    x = _mm512_add_pd(_mm512_mul_pd(x, _mm512_set1_pd(d.half_width)), _mm512_set1_pd(d.center));
  }
  if constexpr (V != N_PLAIN) {
    x = _mm512_min_pd(_mm512_set1_pd(d.high), _mm512_max_pd(_mm512_set1_pd(d.low), x));
  }
  store512<NT>(dst, _mm512_castpd_si512(x));
}

// Store 16 consecutive values of one vector. NT needs dst aligned to the store width.
template <typename T, int V, bool NT>
FI512 void store16(T* dst, __m512 v, const RandParams64& d) {
  if constexpr (std::is_same_v<T, float>) {
    store512<NT>(dst, _mm512_castps_si512(v));
  } else if constexpr (std::is_same_v<T, double>) {
    store8_f64<V, NT>(dst, _mm512_castps512_ps256(v), d);
    store8_f64<V, NT>(dst + 8, _mm512_extractf32x8_ps(v, 1), d);
  } else if constexpr (std::is_same_v<T, HalfBits>) {
    // vcvtps2ph rounds to nearest even as c10::Half(float) (the AVX2 path's conversion too)
    store256<NT>(dst, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    static_assert(std::is_same_v<T, Bf16Bits>);
    store256<NT>(dst, bf16_bits512(v));
  }
}

// All 2 * NV vectors of a step (32 * NV consecutive values).
template <typename T, int V, bool NT, int N>
FI512 void store_step(T* dst, const __m512 (&v)[N], const RandParams64& d) {
  if constexpr (std::is_same_v<T, Bf16BitsNative>) {
    // The folded uniform is never NaN or denormal (see run_typed), so it needs no guard.
    constexpr bool guarded = is_normal(V) || (V & U_FOLD) == 0 || (V & U_ADDC) != 0;
    for (int k = 0; k < N; k += 2) store512<NT>(dst + 16 * k, bf16_pair512<guarded>(v[k], v[k + 1]));
  } else {
    for (int k = 0; k < N; ++k) store16<T, V, NT>(dst + 16 * k, v[k], d);
  }
}

// `steps` steps of NV Philox vectors (32 * NV elements) from global quad q.
template <typename T, int V, int NV, bool NT>
FI512_ENTRY void quads512(T* dst, uint64_t q, int64_t steps, const TensorJob& job, const PhiloxKeys& keys) {
  constexpr bool F64 = std::is_same_v<T, double>;
  for (int64_t i = 0; i < steps; ++i, q += 8 * NV, dst += 32 * NV) {
    __m512i words[2 * NV];
    if (__builtin_expect((q >> 32) == ((q + 8 * NV - 1) >> 32), 1)) {
      philox512<NV, true>(q, keys, words);
    } else {
      philox512<NV, false>(q, keys, words);
    }
    __m512 v[2 * NV];
    values512<V, F64, 2 * NV>(words, job.rand, v);
    store_step<T, V, NT>(dst, v, job.rand64);
  }
}

// Steps per variant: uniform is Philox bound (more vectors in flight), the normal is register bound.
template <int V>
constexpr int block_vectors() {
  return is_normal(V) ? 4 : 6;
}

template <typename T, int V>
int64_t run_variant(T* dst, uint64_t q, int64_t nquads, const TensorJob& job, uint64_t seed, bool stream) {
  constexpr int NV = block_vectors<V>();
  const PhiloxKeys keys = make_keys(job.key, seed);
  // Non-temporal stores need the store width's alignment; elements are aligned to T, so a misaligned
  // start stays misaligned for the whole run and takes regular stores.
  const bool nt = stream && (reinterpret_cast<uintptr_t>(dst) & 63) == 0;
  const int64_t big = nquads / (8 * NV);
  const int64_t small = (nquads - 8 * NV * big) / 8;
  if (nt) {
    quads512<T, V, NV, true>(dst, q, big, job, keys);
  } else {
    quads512<T, V, NV, false>(dst, q, big, job, keys);
  }
  quads512<T, V, 1, false>(dst + 32 * NV * big, q + 8 * NV * big, small, job, keys);
  return 8 * NV * big + 8 * small;
}

template <typename T>
int64_t run_typed(T* dst, uint64_t q, int64_t nquads, const TensorJob& job, uint64_t seed, bool stream) {
  return with_job_variant<std::is_same_v<T, double>>(job, std::is_same_v<T, Bf16BitsNative>, [&](auto v) {
    return run_variant<T, decltype(v)::value>(dst, q, nquads, job, seed, stream);
  });
}

}  // namespace

int64_t random_quads_avx512(OutType out, void* dst, uint64_t q, int64_t nquads, const TensorJob& job, uint64_t seed,
                            bool stream) {
  switch (out) {
    case OUT_F32:
      return run_typed(static_cast<float*>(dst), q, nquads, job, seed, stream);
    case OUT_F64:
      return run_typed(static_cast<double*>(dst), q, nquads, job, seed, stream);
    case OUT_F16:
      return run_typed(static_cast<HalfBits*>(dst), q, nquads, job, seed, stream);
    case OUT_BF16:
      if (cpu_has_avx512_bf16()) return run_typed(static_cast<Bf16BitsNative*>(dst), q, nquads, job, seed, stream);
      return run_typed(static_cast<Bf16Bits*>(dst), q, nquads, job, seed, stream);
  }
  return 0;
}

namespace {
template <bool NATIVE>
FI512_ENTRY void bf16_convert_impl(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(src + i);
    const __m512 hi = _mm512_loadu_ps(src + i + 16);
    if constexpr (NATIVE) {
      _mm512_storeu_si512(dst + i, bf16_pair512(lo, hi));
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), bf16_bits512(lo));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 16), bf16_bits512(hi));
    }
  }
  for (; i < n; ++i) {  // the tail through the scalar rounding (c10's, restated)
    uint32_t b;
    std::memcpy(&b, src + i, 4);
    dst[i] = src[i] != src[i] ? 0x7FC0 : static_cast<uint16_t>((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
  }
}
}  // namespace

bool avx512_bf16_convert(const float* src, uint16_t* dst, int64_t n, bool native) {
  if (!cpu_has_avx512() || (native && !cpu_has_avx512_bf16())) return false;
  if (native) {
    bf16_convert_impl<true>(src, dst, n);
  } else {
    bf16_convert_impl<false>(src, dst, n);
  }
  return true;
}

bool cpu_has_avx512_bf16() {
  static const bool ok = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
  return ok;
}

bool cpu_has_avx512() {
  // __builtin_cpu_supports also checks that the OS saves the zmm state (XCR0), as libgcc's cpuinfo does.
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return ok;
}

__attribute__((target(FI512_TARGET))) void avx512_store_fence() { _mm_sfence(); }

#else  // no x86-64 GCC/Clang: the path does not exist, and cpu_has_avx512() says so

int64_t random_quads_avx512(OutType, void*, uint64_t, int64_t, const TensorJob&, uint64_t, bool) { return 0; }
bool cpu_has_avx512() { return false; }
bool cpu_has_avx512_bf16() { return false; }
bool avx512_bf16_convert(const float*, uint16_t*, int64_t, bool) { return false; }
void avx512_store_fence() {}

#endif  // FASTINIT_HAVE_AVX512_PATH

}  // namespace fastinit
