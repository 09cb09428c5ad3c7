// The CUDA kernel's work as host/device functions: what one thread of fastinit::fill_group's CUDA
// launch does, and the host side that packs a group for it.
//
// nvcc compiles this into the __global__ kernel of fill_cuda.cu. The CPU extension compiles the same
// code as plain C++ into fastinit::_fill_group_cuda_emulated (fill_cuda_emulated.cpp), which runs every
// (block, thread) of a launch one after another on the host: the threads share nothing and never
// synchronize, so that is the launch's result, and the tests check this index mapping bit for bit
// against the reference on machines without a GPU. Only the float arithmetic differs in where it runs,
// and fastinit_stream.h makes that bitwise identical on host and device.
//
// Work unit = one aligned global quad inside a run of consecutive global indices, so each Philox call
// yields all four of its words; consecutive threads take consecutive quads (coalesced stores, 16-byte
// vector stores where the output is aligned). Each block covers a fixed slice of one tensor's units and
// finds its tensor by binary search over the prefix of first blocks. All indices are 64-bit and divide
// by multiplying (FastDiv): a 64-bit divide would be a subroutine call with a stack frame and spills
// (.ci/compile_cuda.sh fails the build on either).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fastinit_stream.h"
#include "fill_group.h"

#ifdef __CUDACC__
#define FASTINIT_UNROLL _Pragma("unroll")
#else
#define FASTINIT_UNROLL
#endif

namespace fastinit {
namespace cuda_kernel {

constexpr int THREADS = 256;
constexpr int UNITS_PER_THREAD = 4;
constexpr int64_t UNITS_PER_BLOCK = int64_t{THREADS} * UNITS_PER_THREAD;  // 4096 elements
constexpr int64_t MAX_GRID = int64_t{1} << 16;  // blocks beyond this loop (grid-stride over block chunks)

// One output tensor, as the kernel reads it (plain old data, copied into the packed buffer).
struct DeviceDesc {
  int64_t data;  // the data pointer
  int64_t numel;
  int64_t kind;
  int64_t base;
  int64_t row_len;
  int64_t row_stride;
  uint64_t key;
  int64_t runs;           // ceil(numel / row_len)
  int64_t units_per_run;  // quads a run of row_len elements can touch, its start being unaligned
  FastDiv per_run;        // divides by units_per_run (when runs > 1)
  DiracParams dirac;
  RandParams rand;
  float pad_;
  double value;  // CONSTANT
  RandParams64 rand64;  // float64 outputs
};
static_assert(sizeof(DeviceDesc) % sizeof(int64_t) == 0, "DeviceDesc must pack into int64 words");
constexpr int64_t DESC_WORDS = sizeof(DeviceDesc) / sizeof(int64_t);

FASTINIT_HD int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
FASTINIT_HD int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

template <typename T>
FASTINIT_HD T to_out(float v) {
  // c10::Half / c10::BFloat16 round to nearest even on host and device; only their NaN bit patterns
  // differ (__float2bfloat16 gives 0x7FFF), so NaN takes the host's canonical bits.
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    if (v != v) return c10::BFloat16(0x7FC0, c10::BFloat16::from_bits());
  } else if constexpr (std::is_same_v<T, c10::Half>) {
    if (v != v) return c10::Half(0x7E00, c10::Half::from_bits());
  }
  return static_cast<T>(v);
}

// A random kind's value in the output dtype (float64 outputs compute in double: stream contract v2).
template <typename T>
FASTINIT_HD T random_out(int64_t kind, uint32_t word, const RandParams& p, const RandParams64& d) {
  if constexpr (std::is_same_v<T, double>) {
    return random_value64(kind, word, p, d);
  } else {
    return to_out<T>(random_value(kind, word, p));
  }
}

template <typename T>
FASTINIT_HD T constant_out(double v) {
  if constexpr (std::is_same_v<T, double>) {
    return v;
  } else {
    return to_out<T>(static_cast<float>(v));  // as Tensor.fill_: half types through float32
  }
}

// Four consecutive outputs: one 16-byte store (8-byte for 16-bit types, two 16-byte ones for double)
// when the destination is aligned for its vector type.
template <typename T>
FASTINIT_HD void store4(T* dst, const T (&v)[4]) {
  constexpr size_t align = 4 * sizeof(T) < 16 ? 4 * sizeof(T) : 16;
  if (reinterpret_cast<uintptr_t>(dst) % align == 0) {
#ifdef __CUDA_ARCH__
    if constexpr (sizeof(T) == 4) {
      float4 w;
      memcpy(&w, v, 16);
      *reinterpret_cast<float4*>(dst) = w;
    } else if constexpr (sizeof(T) == 2) {
      uint2 w;
      memcpy(&w, v, 8);
      *reinterpret_cast<uint2*>(dst) = w;
    } else {
      double2 a, b;
      memcpy(&a, v, 16);
      memcpy(&b, v + 2, 16);
      reinterpret_cast<double2*>(dst)[0] = a;
      reinterpret_cast<double2*>(dst)[1] = b;
    }
#else
    std::memcpy(dst, v, 4 * sizeof(T));  // the same four elements the vector store writes
#endif
    return;
  }
  FASTINIT_UNROLL
  for (int l = 0; l < 4; ++l) dst[l] = v[l];
}

// One work unit: quad k of run r of tensor d.
template <typename T>
FASTINIT_HD void fill_unit(const DeviceDesc& d, int64_t u, uint64_t seed) {
  int64_t r = 0;
  int64_t k = u;
  if (d.runs > 1) {
    r = static_cast<int64_t>(d.per_run.div(static_cast<uint64_t>(u)));
    k = u - r * d.units_per_run;
  }
  const int64_t run_start_local = r * d.row_len;
  const int64_t len = imin(d.row_len, d.numel - run_start_local);
  const int64_t gs = d.base + r * d.row_stride;  // global index of the run's first element
  const int64_t q = (gs >> 2) + k;
  const int64_t g0 = q << 2;
  const int64_t lo = imax(g0, gs);
  const int64_t hi = imin(g0 + 4, gs + len);
  if (lo >= hi) return;  // this slot lies past the end of its run

  T vals[4];
  if (d.kind == KIND_CONSTANT) {
    const T c = constant_out<T>(d.value);
    FASTINIT_UNROLL
    for (int l = 0; l < 4; ++l) vals[l] = c;
  } else if (d.kind == KIND_DIRAC) {
    FASTINIT_UNROLL
    for (int l = 0; l < 4; ++l) vals[l] = to_out<T>(dirac_value(g0 + l, d.dirac));
  } else {
    const Quad w = stream_quad(static_cast<uint64_t>(q), d.key, seed);
    FASTINIT_UNROLL
    for (int l = 0; l < 4; ++l) vals[l] = random_out<T>(d.kind, w.x[l], d.rand, d.rand64);
  }
  T* out = reinterpret_cast<T*>(d.data) + run_start_local + (lo - gs);
  if (lo == g0 && hi == g0 + 4) {
    store4(out, vals);
  } else {
    // Static indices only: a dynamically indexed vals[] would live in local memory (a stack frame).
    FASTINIT_UNROLL
    for (int l = 0; l < 4; ++l) {
      if (g0 + l >= lo && g0 + l < hi) out[g0 + l - lo] = vals[l];
    }
  }
}

// Thread `thread` of block `block` in a grid of `grid` blocks. buf: [T + 1] first block of each tensor
// (a prefix sum; the last entry is the total), then T descriptors.
template <typename T>
FASTINIT_HD void fill_thread(const int64_t* __restrict__ buf, int64_t ntensors, uint64_t seed, int64_t block,
                             int64_t grid, int64_t thread) {
  const int64_t* block_begin = buf;
  const DeviceDesc* descs = reinterpret_cast<const DeviceDesc*>(buf + ntensors + 1);
  const int64_t total_blocks = block_begin[ntensors];
  for (int64_t b = block; b < total_blocks; b += grid) {
    // Last tensor whose first block is <= b (tensors with no units own no block).
    int64_t lo = 0, hi = ntensors - 1;
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) >> 1;
      if (block_begin[mid] <= b) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const DeviceDesc& d = descs[lo];
    const int64_t units = d.runs * d.units_per_run;
    const int64_t first = (b - block_begin[lo]) * UNITS_PER_BLOCK;
    FASTINIT_UNROLL
    for (int i = 0; i < UNITS_PER_THREAD; ++i) {
      const int64_t u = first + int64_t{i} * THREADS + thread;
      if (u < units) fill_unit<T>(d, u, seed);
    }
  }
}

// Host: the launch's packed int64 buffer and its block count (0: nothing to write).
struct Packed {
  std::vector<int64_t> words;
  int64_t blocks;
};

inline Packed pack(const std::vector<TensorJob>& jobs) {
  const int64_t T = static_cast<int64_t>(jobs.size());
  Packed p{std::vector<int64_t>((T + 1) + T * DESC_WORDS, 0), 0};
  int64_t* begin = p.words.data();
  auto* descs = reinterpret_cast<DeviceDesc*>(begin + T + 1);
  for (int64_t t = 0; t < T; ++t) {
    const TensorJob& j = jobs[t];
    DeviceDesc d{};
    d.data = reinterpret_cast<int64_t>(j.data);
    d.numel = j.numel;
    d.kind = j.kind;
    d.base = j.base;
    d.row_len = j.row_len;
    d.row_stride = j.row_stride;
    d.key = j.key;
    d.runs = j.numel == 0 ? 0 : (j.numel + j.row_len - 1) / j.row_len;
    d.units_per_run = (imin(j.row_len, j.numel) + 3 + 3) / 4;
    if (d.runs > 1) d.per_run = make_fast_div(static_cast<uint64_t>(d.units_per_run));
    d.dirac = j.dirac;
    d.rand = j.rand;
    d.rand64 = j.rand64;
    d.value = j.value;
    std::memcpy(descs + t, &d, sizeof d);
    begin[t] = p.blocks;
    p.blocks += (d.runs * d.units_per_run + UNITS_PER_BLOCK - 1) / UNITS_PER_BLOCK;
  }
  begin[T] = p.blocks;
  return p;
}

}  // namespace cuda_kernel
}  // namespace fastinit
