// fastinit::_fill_group_cuda_emulated: the CUDA kernel's code (fill_cuda_kernel.h) run on the host.
//
// Every (block, thread) of the launch fill_cuda.cu would make runs here, one after another, on CPU
// tensors; the threads share nothing and never synchronize, so this is the launch's result. It exists
// so that the CUDA kernel's index mapping (units, runs, block search, partial quads, vector stores,
// the grid-stride loop: max_grid smaller than the block count exercises it) is tested bit for bit
// against the reference on machines without a GPU. Not a fast path: use fastinit::fill_group.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "fill_cuda_kernel.h"
#include "fill_group.h"

namespace fastinit {
namespace {

template <typename T>
void run_launch(const cuda_kernel::Packed& p, int64_t ntensors, uint64_t seed, int64_t grid) {
  for (int64_t block = 0; block < grid; ++block) {
    for (int64_t thread = 0; thread < cuda_kernel::THREADS; ++thread) {
      cuda_kernel::fill_thread<T>(p.words.data(), ntensors, seed, block, grid, thread);
    }
  }
}

void fill_group_cuda_emulated(at::TensorList outs, const at::Tensor& table, const at::Tensor& params, int64_t seed,
                              int64_t max_grid) {
  TORCH_CHECK(max_grid >= 1, "fastinit::_fill_group_cuda_emulated: max_grid must be >= 1, got ", max_grid);
  const std::vector<TensorJob> jobs = parse_fill_group(outs, table, params);
  if (jobs.empty()) return;
  TORCH_CHECK(outs[0].device().is_cpu(), "fastinit::_fill_group_cuda_emulated: outputs must be CPU tensors, got ",
              outs[0].device());
  const cuda_kernel::Packed packed = cuda_kernel::pack(jobs);
  if (packed.blocks == 0) return;
  const int64_t grid = std::min({packed.blocks, cuda_kernel::MAX_GRID, max_grid});
  const auto T = static_cast<int64_t>(jobs.size());
  const auto useed = static_cast<uint64_t>(seed);
  switch (outs[0].scalar_type()) {
    case at::kFloat:
      run_launch<float>(packed, T, useed, grid);
      break;
    case at::kDouble:
      run_launch<double>(packed, T, useed, grid);
      break;
    case at::kHalf:
      run_launch<c10::Half>(packed, T, useed, grid);
      break;
    case at::kBFloat16:
      run_launch<c10::BFloat16>(packed, T, useed, grid);
      break;
    default:
      TORCH_CHECK(false, "fastinit::_fill_group_cuda_emulated: unsupported dtype ", outs[0].scalar_type());
  }
}

}  // namespace
}  // namespace fastinit

TORCH_LIBRARY_IMPL(fastinit, CPU, m) { m.impl("_fill_group_cuda_emulated", &fastinit::fill_group_cuda_emulated); }
