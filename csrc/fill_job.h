// One output tensor of a fill_group call, decoded: plain data, no ATen, so that the SIMD translation
// units (compiled with per-function target attributes) can include it without pulling in ATen's
// inline functions.
#pragma once

#include <cstdint>

#include "fastinit_stream.h"

namespace fastinit {

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
  RandParams rand;      // float32 parameters of the random kinds
  RandParams64 rand64;  // the same columns as doubles (float64 outputs)
  double value;     // CONSTANT: the fill value as given
};

}  // namespace fastinit
