// fastinit::fill_group on CUDA: one kernel launch per group, on the current stream.
//
// What each thread does, and how the host packs the group (per-tensor descriptors including data
// pointers, and the prefix of each tensor's first block), is fill_cuda_kernel.h, shared with the CPU
// emulation that tests it without a GPU. This file uploads the packed buffer with a single H2D copy
// from pinned memory and launches.
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

#include "fill_cuda_kernel.h"
#include "fill_group.h"

namespace fastinit {
namespace {

using cuda_kernel::THREADS;

template <typename T>
__global__ void __launch_bounds__(THREADS) fill_group_kernel(const int64_t* __restrict__ buf, int64_t ntensors,
                                                             uint64_t seed) {
  cuda_kernel::fill_thread<T>(buf, ntensors, seed, blockIdx.x, gridDim.x, threadIdx.x);
}

void fill_group_cuda(at::TensorList outs, const at::Tensor& table, const at::Tensor& params, int64_t seed) {
  const std::vector<TensorJob> jobs = parse_fill_group(outs, table, params);
  if (jobs.empty()) return;
  TORCH_CHECK(outs[0].device().is_cuda(), "fastinit::fill_group (CUDA kernel): outputs must be CUDA tensors, got ",
              outs[0].device());
  const int64_t T = static_cast<int64_t>(jobs.size());
  const cuda_kernel::Packed packed = cuda_kernel::pack(jobs);
  if (packed.blocks == 0) return;
  const auto words = static_cast<int64_t>(packed.words.size());
  at::Tensor host = at::empty({words}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  std::memcpy(host.data_ptr<int64_t>(), packed.words.data(), words * sizeof(int64_t));

  const c10::cuda::CUDAGuard guard(outs[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor dev = at::empty({words}, at::TensorOptions().dtype(at::kLong).device(outs[0].device()));
  dev.copy_(host, /*non_blocking=*/true);  // one H2D copy; the pinned block is kept until it completes
  const auto grid = static_cast<unsigned>(std::min(packed.blocks, cuda_kernel::MAX_GRID));
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
