// Host side of fastinit::fill_group shared by the CPU and CUDA kernels: the checked, parsed group.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "fastinit_stream.h"
#include "fill_job.h"

namespace fastinit {

// Columns of the int64 table and the float64 params (fastinit/tables.py).
constexpr int64_t TABLE_COLS = 10;
constexpr int64_t PARAM_COLS = 6;

// Checks every argument of fastinit::fill_group (raising RuntimeError with a message naming the
// problem) and decodes the tables; used by every device's kernel so they all accept the same inputs.
std::vector<TensorJob> parse_fill_group(at::TensorList outs, const at::Tensor& table, const at::Tensor& params);

}  // namespace fastinit
