// fastinit::fill_group on CUDA: one kernel launch per group, on the current stream.
//
// The host packs one small int64 buffer (per-tensor descriptors including data pointers, and the
// prefix of each tensor's first block) and uploads it with a single H2D copy from pinned memory.
// Work unit = one aligned global quad inside a run of consecutive global indices, so each Philox
// call yields all four of its words; consecutive threads take consecutive quads (coalesced
// stores, 16-byte vector stores where the output is aligned). Each block covers a fixed slice of
// one tensor's units and finds its tensor by binary search over the prefix. All indices are 64-bit,
// and divide by multiplying (FastDiv): a 64-bit divide would be a subroutine call with a stack frame
// and spills (.ci/compile_cuda.sh fails the build on either).
//
// Build with -fmad=false (never --use_fast_math); fastinit_stream.h also uses the __f*_rn
// intrinsics, which are never contracted into FMAs, so the values match the CPU bit for bit.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <cstring>
#include <vector>

#include "fastinit_stream.h"
#include "fill_group.h"

namespace fastinit {
namespace {

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
};
static_assert(sizeof(DeviceDesc) % sizeof(int64_t) == 0, "DeviceDesc must pack into int64 words");
constexpr int64_t DESC_WORDS = sizeof(DeviceDesc) / sizeof(int64_t);

template <typename T>
__device__ __forceinline__ T to_out(float v) {
  // c10::Half / c10::BFloat16 round to nearest even on the device too; only their NaN bit patterns
  // differ from the host's (__float2bfloat16 gives 0x7FFF), so NaN takes the host's canonical bits.
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    if (v != v) return c10::BFloat16(0x7FC0, c10::BFloat16::from_bits());
  } else if constexpr (std::is_same_v<T, c10::Half>) {
    if (v != v) return c10::Half(0x7E00, c10::Half::from_bits());
  }
  return static_cast<T>(v);
}

template <typename T>
__device__ __forceinline__ T constant_out(double v) {
  if constexpr (std::is_same_v<T, double>) {
    return v;
  } else {
    return to_out<T>(static_cast<float>(v));  // as Tensor.fill_: half types through float32
  }
}

// Four consecutive outputs: one 16-byte store (8-byte for 16-bit types, two 16-byte ones for double)
// when the destination is aligned for its vector type.
template <typename T>
__device__ __forceinline__ void store4(T* dst, const T (&v)[4]) {
  constexpr size_t align = 4 * sizeof(T) < 16 ? 4 * sizeof(T) : 16;
  if (reinterpret_cast<uintptr_t>(dst) % align == 0) {
    if constexpr (sizeof(T) == 4) {
      float4 w;
      memcpy(&w, v, 16);
      *reinterpret_cast<float4*>(dst) = w;
      return;
    } else if constexpr (sizeof(T) == 2) {
      uint2 w;
      memcpy(&w, v, 8);
      *reinterpret_cast<uint2*>(dst) = w;
      return;
    } else {
      double2 a, b;
      memcpy(&a, v, 16);
      memcpy(&b, v + 2, 16);
      reinterpret_cast<double2*>(dst)[0] = a;
      reinterpret_cast<double2*>(dst)[1] = b;
      return;
    }
  }
#pragma unroll
  for (int l = 0; l < 4; ++l) dst[l] = v[l];
}

// One work unit: quad k of run r of tensor d.
template <typename T>
__device__ __forceinline__ void fill_unit(const DeviceDesc& d, int64_t u, uint64_t seed) {
  int64_t r = 0;
  int64_t k = u;
  if (d.runs > 1) {
    r = static_cast<int64_t>(d.per_run.div(static_cast<uint64_t>(u)));
    k = u - r * d.units_per_run;
  }
  const int64_t run_start_local = r * d.row_len;
  const int64_t len = min(d.row_len, d.numel - run_start_local);
  const int64_t gs = d.base + r * d.row_stride;  // global index of the run's first element
  const int64_t q = (gs >> 2) + k;
  const int64_t g0 = q << 2;
  const int64_t lo = max(g0, gs);
  const int64_t hi = min(g0 + 4, gs + len);
  if (lo >= hi) return;  // this slot lies past the end of its run

  T vals[4];
  if (d.kind == KIND_CONSTANT) {
    const T c = constant_out<T>(d.value);
#pragma unroll
    for (int l = 0; l < 4; ++l) vals[l] = c;
  } else if (d.kind == KIND_DIRAC) {
#pragma unroll
    for (int l = 0; l < 4; ++l) vals[l] = to_out<T>(dirac_value(g0 + l, d.dirac));
  } else {
    const Quad w = stream_quad(static_cast<uint64_t>(q), d.key, seed);
#pragma unroll
    for (int l = 0; l < 4; ++l) vals[l] = to_out<T>(random_value(d.kind, w.x[l], d.rand));
  }
  T* out = reinterpret_cast<T*>(d.data) + run_start_local + (lo - gs);
  if (lo == g0 && hi == g0 + 4) {
    store4(out, vals);
  } else {
    // Static indices only: a dynamically indexed vals[] would live in local memory (a stack frame).
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      if (g0 + l >= lo && g0 + l < hi) out[g0 + l - lo] = vals[l];
    }
  }
}

// buf: [T + 1] first block of each tensor (prefix, last = total blocks), then T descriptors.
template <typename T>
__global__ void __launch_bounds__(THREADS) fill_group_kernel(const int64_t* __restrict__ buf, int64_t ntensors,
                                                             uint64_t seed) {
  const int64_t* block_begin = buf;
  const DeviceDesc* descs = reinterpret_cast<const DeviceDesc*>(buf + ntensors + 1);
  const int64_t total_blocks = block_begin[ntensors];
  for (int64_t b = blockIdx.x; b < total_blocks; b += gridDim.x) {
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
#pragma unroll
    for (int i = 0; i < UNITS_PER_THREAD; ++i) {
      const int64_t u = first + int64_t{i} * THREADS + threadIdx.x;
      if (u < units) fill_unit<T>(d, u, seed);
    }
  }
}

void fill_group_cuda(at::TensorList outs, const at::Tensor& table, const at::Tensor& params, int64_t seed) {
  const std::vector<TensorJob> jobs = parse_fill_group(outs, table, params);
  if (jobs.empty()) return;
  TORCH_CHECK(outs[0].device().is_cuda(), "fastinit::fill_group (CUDA kernel): outputs must be CUDA tensors, got ",
              outs[0].device());
  const int64_t T = static_cast<int64_t>(jobs.size());
  const int64_t words = (T + 1) + T * DESC_WORDS;
  at::Tensor host = at::empty({words}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  int64_t* begin = host.data_ptr<int64_t>();
  auto* descs = reinterpret_cast<DeviceDesc*>(begin + T + 1);
  int64_t blocks = 0;
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
    d.units_per_run = (std::min(j.row_len, j.numel) + 3 + 3) / 4;
    if (d.runs > 1) d.per_run = make_fast_div(static_cast<uint64_t>(d.units_per_run));
    d.dirac = j.dirac;
    d.rand = j.rand;
    d.value = j.value;
    std::memcpy(descs + t, &d, sizeof d);
    begin[t] = blocks;
    blocks += (d.runs * d.units_per_run + UNITS_PER_BLOCK - 1) / UNITS_PER_BLOCK;
  }
  begin[T] = blocks;
  if (blocks == 0) return;

  const c10::cuda::CUDAGuard guard(outs[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor dev = at::empty({words}, at::TensorOptions().dtype(at::kLong).device(outs[0].device()));
  dev.copy_(host, /*non_blocking=*/true);  // one H2D copy; the pinned block is kept until it completes
  const auto grid = static_cast<unsigned>(std::min(blocks, MAX_GRID));
  const int64_t* buf = dev.const_data_ptr<int64_t>();
  const auto useed = static_cast<uint64_t>(seed);
  switch (outs[0].scalar_type()) {
    case at::kFloat:
      fill_group_kernel<float><<<grid, THREADS, 0, stream>>>(buf, T, useed);
      break;
    case at::kDouble:
      fill_group_kernel<double><<<grid, THREADS, 0, stream>>>(buf, T, useed);
      break;
    case at::kHalf:
      fill_group_kernel<c10::Half><<<grid, THREADS, 0, stream>>>(buf, T, useed);
      break;
    case at::kBFloat16:
      fill_group_kernel<c10::BFloat16><<<grid, THREADS, 0, stream>>>(buf, T, useed);
      break;
    default:
      TORCH_CHECK(false, "fastinit::fill_group: unsupported dtype ", outs[0].scalar_type());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace
}  // namespace fastinit

TORCH_LIBRARY_IMPL(fastinit, CUDA, m) { m.impl("fill_group", &fastinit::fill_group_cuda); }
