// fastinit::fill_group: the op schema, the argument checks every backend shares, and the Python
// module stub that lets `import fastinit._C` load this library (which registers the op).
#include <Python.h>

#include <ATen/ATen.h>
#include <torch/library.h>

#include "fill_group.h"

extern "C" {
// `import fastinit._C` only needs a module object: the op registers itself when the .so loads
// (the pattern of pytorch/extension-cpp; no pybind11 needed).
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",  // name
      "fastinit's compiled kernels; the op is torch.ops.fastinit.fill_group",
      -1,  // no per-module state
      nullptr,
  };
  return PyModule_Create(&module_def);
}
}

namespace fastinit {

std::vector<TensorJob> parse_fill_group(at::TensorList outs, const at::Tensor& table, const at::Tensor& params) {
  TORCH_CHECK(table.scalar_type() == at::kLong && table.dim() == 2 && table.size(1) == TABLE_COLS,
              "fastinit::fill_group: table must be an int64 tensor of shape [T, ", TABLE_COLS, "], got ",
              table.scalar_type(), " of shape ", table.sizes());
  TORCH_CHECK(table.device().is_cpu() && table.is_contiguous(),
              "fastinit::fill_group: table must be a contiguous CPU tensor, got one on ", table.device());
  const int64_t T = table.size(0);
  TORCH_CHECK(params.scalar_type() == at::kDouble && params.dim() == 2 && params.size(0) == T &&
                  params.size(1) == PARAM_COLS,
              "fastinit::fill_group: params must be a float64 tensor of shape [", T, ", ", PARAM_COLS, "], got ",
              params.scalar_type(), " of shape ", params.sizes());
  TORCH_CHECK(params.device().is_cpu() && params.is_contiguous(),
              "fastinit::fill_group: params must be a contiguous CPU tensor, got one on ", params.device());
  TORCH_CHECK(static_cast<int64_t>(outs.size()) == T, "fastinit::fill_group: got ", outs.size(),
              " output tensors for a table of ", T, " rows");

  std::vector<TensorJob> jobs;
  jobs.reserve(outs.size());
  if (T == 0) return jobs;
  const auto dtype = outs[0].scalar_type();
  const auto device = outs[0].device();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16 || dtype == at::kDouble,
              "fastinit::fill_group: outputs must be float32, float16, bfloat16 or float64, got ", dtype);
  const int64_t* tab = table.const_data_ptr<int64_t>();
  const double* par = params.const_data_ptr<double>();
  for (int64_t i = 0; i < T; ++i) {
    const at::Tensor& out = outs[i];
    TORCH_CHECK(out.scalar_type() == dtype, "fastinit::fill_group: outs[", i, "] is ", out.scalar_type(),
                " but outs[0] is ", dtype, " (a group has one dtype)");
    TORCH_CHECK(out.device() == device, "fastinit::fill_group: outs[", i, "] is on ", out.device(),
                " but outs[0] is on ", device, " (a group has one device)");
    TORCH_CHECK(out.is_contiguous(), "fastinit::fill_group: outs[", i, "] must be contiguous");
    const int64_t* row = tab + i * TABLE_COLS;
    const double* p = par + i * PARAM_COLS;
    TensorJob job{};
    job.data = out.numel() ? out.data_ptr() : nullptr;
    job.numel = row[0];
    job.key = static_cast<uint64_t>(row[1]);
    job.kind = row[2];
    job.base = row[3];
    job.row_len = row[4];
    job.row_stride = row[5];
    TORCH_CHECK(job.numel == out.numel(), "fastinit::fill_group: table row ", i, " says NUMEL ", job.numel,
                " but outs[", i, "] has ", out.numel(), " elements");
    TORCH_CHECK(job.kind >= KIND_CONSTANT && job.kind <= KIND_DIRAC, "fastinit::fill_group: table row ", i,
                " has unknown KIND ", job.kind, " (expected 0..3)");
    TORCH_CHECK(job.base >= 0 && job.row_len >= 1 && job.row_stride >= 0, "fastinit::fill_group: table row ", i,
                " has a bad index map (BASE ", job.base, ", ROW_LEN ", job.row_len, ", ROW_STRIDE ",
                job.row_stride, "): need BASE >= 0, ROW_LEN >= 1, ROW_STRIDE >= 0");
    if (job.kind == KIND_DIRAC) {
      TORCH_CHECK(row[6] >= 1 && row[7] >= 1 && row[8] >= 1 && row[9] >= 0, "fastinit::fill_group: table row ", i,
                  " (DIRAC) needs DIRAC_INNER, DIRAC_SPATIAL and DIRAC_OUT_PER_GROUP >= 1 and DIRAC_CENTER >= 0, got ",
                  row[6], ", ", row[7], ", ", row[8], ", ", row[9]);
      job.dirac = make_dirac_params(row[6], row[7], row[8], row[9]);
    }
    // The random kinds of float32 / bfloat16 / float16 groups take float32 parameters (build_tables
    // writes float32-exact values); float64 groups read the doubles (stream contract v2).
    job.rand = RandParams{static_cast<float>(p[0]), static_cast<float>(p[1]), static_cast<float>(p[2]),
                          static_cast<float>(p[3]), static_cast<float>(p[4]), static_cast<float>(p[5])};
    job.rand64 = RandParams64{p[0], p[1], p[2], p[3], p[4], p[5]};
    job.value = p[0];
    jobs.push_back(job);
  }
  return jobs;
}

}  // namespace fastinit

TORCH_LIBRARY(fastinit, m) {
  // outs are written in place (a!); table and params are read-only CPU tables (fastinit/tables.py).
  m.def("fill_group(Tensor(a!)[] outs, Tensor table, Tensor params, int seed) -> ()");
  // Tests only: the CUDA kernel's code run on the host, at most max_grid blocks (fill_cuda_emulated.cpp).
  m.def("_fill_group_cuda_emulated(Tensor(a!)[] outs, Tensor table, Tensor params, int seed, int max_grid) -> ()");
}
