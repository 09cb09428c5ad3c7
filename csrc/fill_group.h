// Host side of fastinit::fill_group shared by the CPU and CUDA kernels: the checked, parsed group.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "fastinit_stream.h"

namespace fastinit {

// Columns of the int64 table and the float64 params (fastinit/tables.py).
constexpr int64_t TABLE_COLS = 10;
constexpr int64_t PARAM_COLS = 6;

// One output tensor of a group, with its table row and params decoded.
struct TensorJob {
  void* data;
  int64_t numel;
  uint64_t key;
  int64_t kind;
  int64_t base;        // global index of local element 0
  int64_t row_len;     // local elements per run of consecutive global indices (>= 1)
  int64_t row_stride;  // global distance between runs
  DiracParams dirac;
  RandParams rand;  // float32 parameters of the random kinds
  double value;     // CONSTANT: the fill value as given
};

// Checks every argument of fastinit::fill_group (raising RuntimeError with a message naming the
// problem) and decodes the tables; used by every device's kernel so they all accept the same inputs.
std::vector<TensorJob> parse_fill_group(at::TensorList outs, const at::Tensor& table, const at::Tensor& params);

}  // namespace fastinit
