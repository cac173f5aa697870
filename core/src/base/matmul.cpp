// The matrix products (matmul.hpp, llmscope/matmul.hpp).
#include "base/matmul.hpp"

#include "base/sgemm.hpp"
#include "llmscope/matmul.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <vector>

namespace llmscope::detail {
namespace {

// OpenBLAS's thread count, found at run time: libtorch links whichever libblas.so.3 the system
// chose, and only OpenBLAS has these.
struct OpenBlasThreads {
  void (*set)(int) = nullptr;
  int (*get)() = nullptr;
};

const OpenBlasThreads& openblas_threads() {
  static const OpenBlasThreads threads = [] {
    OpenBlasThreads t;
    t.set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    t.get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (!t.set || !t.get) t = OpenBlasThreads{};
    return t;
  }();
  return threads;
}

// Holds OpenBLAS to one thread while it lives (the caller's threads are ATen's).
class OneBlasThread {
 public:
  OneBlasThread() : saved_(openblas_threads().get()) {
    if (saved_ != 1) openblas_threads().set(1);
  }
  ~OneBlasThread() {
    if (saved_ != 1) openblas_threads().set(saved_);
  }
  OneBlasThread(const OneBlasThread&) = delete;
  OneBlasThread& operator=(const OneBlasThread&) = delete;

 private:
  int saved_;
};

// Below this many multiply-adds a product is not worth the threads' start.
constexpr int64_t kMinWork = int64_t{1} << 18;

// Autograd is recorded by ATen's own calls only (out= variants refuse inputs that need gradients).
bool records_gradient(const at::Tensor& t) {
  return t.defined() && t.requires_grad() && at::GradMode::is_enabled();
}

// Whether a product is ours to make with out= calls: CPU operands of float32 or float64, one
// dtype, no gradient recorded, and enough work to be worth more than one call.
bool own_product(const at::Tensor& a, const at::Tensor& b, int64_t work) {
  const auto dtype = a.scalar_type();
  return work >= kMinWork && a.device().is_cpu() && b.device().is_cpu() &&
         (dtype == at::kFloat || dtype == at::kDouble) && b.scalar_type() == dtype &&
         !records_gradient(a) && !records_gradient(b);
}

// ... and spread over ATen's threads, with OpenBLAS held to one meanwhile.
bool spread(const at::Tensor& a, const at::Tensor& b, int64_t work) {
  return own_product(a, b, work) && at::get_num_threads() > 1 && !at::in_parallel_region() &&
         openblas_threads().set != nullptr;
}

// Whether this thread's products multiply items apart (ItemsApart).
thread_local bool items_apart = true;

// Rows cut at a BLAS tile's edges: 1 to 31 rows from offsets 0 to 8 of one product, against the
// whole; k and n are wide enough that the BLAS takes its large-product kernels, not the small-
// matrix ones some builds have. Deterministic values, no generator.
bool probe_rows_independent(at::ScalarType dtype) {
  constexpr int64_t kRows = 40, kInner = 512, kColumns = 256;
  const auto options = at::TensorOptions().dtype(dtype);
  const at::Tensor a = at::sin(at::arange(kRows * kInner, options).reshape({kRows, kInner}));
  const at::Tensor b =
      at::cos(at::arange(kInner * kColumns, options).reshape({kInner, kColumns}) * 0.37);
  const auto check = [&] {
    const at::Tensor whole = at::mm(a, b);
    for (const int64_t start : {0, 1, 3, 8}) {
      for (const int64_t rows : {1, 2, 5, 7, 12, 13, 17, 24, 31}) {
        if (!at::equal(at::mm(a.narrow(0, start, rows), b), whole.narrow(0, start, rows)))
          return false;
      }
    }
    return true;
  };
  if (!check()) return false;
  if (openblas_threads().set == nullptr) return true;
  OneBlasThread one;  // the threaded products' setting
  return check();
}

}  // namespace

ItemsApart::ItemsApart(bool apart) : saved_(items_apart) { items_apart = apart; }
ItemsApart::~ItemsApart() { items_apart = saved_; }

bool blas_rows_independent(at::ScalarType dtype) {
  if (dtype == at::kFloat) {
    static const bool independent = probe_rows_independent(at::kFloat);
    return independent;
  }
  if (dtype == at::kDouble) {
    static const bool independent = probe_rows_independent(at::kDouble);
    return independent;
  }
  return false;  // other dtypes' CPU products are ATen's own loops: multiplied apart to be sure
}

at::Tensor threaded_addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b,
                          int64_t items) {
  // Where llmscope's own kernel makes the product, rows never depend on their neighbours.
  if (sgemm_applies(bias, a, b)) return sgemm(bias, a, b);
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  if (items < 2 || m % items != 0 || !items_apart || !a.device().is_cpu() ||
      blas_rows_independent(a.scalar_type())) {
    items = 1;
  }
  const int64_t rows = m / items;
  const auto item = [&](const at::Tensor& t, int64_t i) { return t.narrow(0, i * rows, rows); };
  // Item i's rows times columns [begin, begin + width) of b, into `part`.
  const auto multiply = [&](at::Tensor part, int64_t i, int64_t begin, int64_t width) {
    if (bias.defined()) {
      at::addmm_out(part, bias.narrow(-1, begin, width), item(a, i), b.narrow(1, begin, width));
    } else {
      at::mm_out(part, item(a, i), b.narrow(1, begin, width));
    }
  };
  // Each item is decided on its own rows, so that it goes the way it would alone.
  if (!spread(a, b, rows * k * n) ||
      (bias.defined() && (bias.scalar_type() != a.scalar_type() || records_gradient(bias)))) {
    const auto aten = [&](const at::Tensor& part) {
      return bias.defined() ? at::addmm(bias, part, b) : at::mm(part, b);
    };
    if (items == 1) return aten(a);
    if (records_gradient(a) || records_gradient(b) || records_gradient(bias)) {
      std::vector<at::Tensor> parts;  // out= calls refuse them
      for (int64_t i = 0; i < items; ++i) parts.push_back(aten(item(a, i)));
      return at::cat(parts);
    }
    at::Tensor out = at::empty({m, n}, a.options());
    for (int64_t i = 0; i < items; ++i) multiply(item(out, i), i, 0, n);
    return out;
  }
  at::Tensor out = at::empty({m, n}, a.options());
  // Each thread's columns, as ATen's parallel_for would cut [0, n) for one product: the same
  // ranges whatever the items, ordered range by range so a thread keeps its part of b.
  const int64_t threads = at::get_num_threads();
  const int64_t columns = (n + threads - 1) / threads;
  const int64_t ranges = (n + columns - 1) / columns;
  OneBlasThread one;
  at::parallel_for(0, ranges * items, 1, [&](int64_t first, int64_t last) {
    for (int64_t unit = first; unit < last; ++unit) {
      const int64_t begin = unit / items * columns, i = unit % items;
      const int64_t width = std::min(columns, n - begin);
      multiply(item(out, i).narrow(1, begin, width), i, begin, width);
    }
  });
  return out;
}

int64_t items_of(const at::Tensor& x) {
  if (x.dim() <= 2) return 1;
  const int64_t matrix = x.size(-2) * x.size(-1);
  return matrix == 0 ? 1 : x.numel() / matrix;
}

at::Tensor threaded_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out) {
  if (b.dim() == 2 && a.dim() >= 2 && !out.defined()) {
    std::vector<int64_t> shape = a.sizes().vec();
    shape.back() = b.size(1);
    return threaded_addmm(at::Tensor(), a.reshape({-1, a.size(-1)}), b, items_of(a)).view(shape);
  }
  const bool batched = a.dim() >= 3 && a.dim() == b.dim() &&
                       a.sizes().slice(0, a.dim() - 2) == b.sizes().slice(0, b.dim() - 2);
  std::vector<int64_t> shape = a.sizes().vec();
  if (batched) shape.back() = b.size(-1);
  TORCH_CHECK(!out.defined() || (batched && out.sizes() == at::IntArrayRef(shape)),
              "threaded_matmul: out has shape ", out.sizes(),
              ", expected the product of same-batched operands ", a.sizes(), " and ", b.sizes());
  const auto aten = [&]() -> at::Tensor {
    if (!out.defined()) return at::matmul(a, b);
    return out.copy_(at::matmul(a, b));
  };
  if (!batched) return aten();
  const int64_t lead = a.dim() - 2, m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const int64_t count = a.numel() / std::max<int64_t>(1, m * k);
  // Small products stay one ATen call: a call per matrix costs a few microseconds.
  if (!own_product(a, b, count * m * k * n) ||
      (out.defined() && (!out.device().is_cpu() || out.scalar_type() != a.scalar_type()))) {
    return aten();
  }
  const at::Tensor result = out.defined() ? out : at::empty(shape, a.options());
  // Each matrix as a strided view of its operand: heads cut from a wider projection, or a
  // transposed key, go to the BLAS with their strides instead of being copied together first.
  const auto matrix = [lead](const at::Tensor& t, int64_t index) {
    int64_t offset = t.storage_offset();
    for (int64_t d = lead - 1; d >= 0; --d) {
      offset += (index % t.size(d)) * t.stride(d);
      index /= t.size(d);
    }
    return t.as_strided({t.size(-2), t.size(-1)}, {t.stride(-2), t.stride(-1)}, offset);
  };
  const auto multiply = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      at::Tensor part = matrix(result, i);
      at::mm_out(part, matrix(a, i), matrix(b, i));
    }
  };
  if (!spread(a, b, count * m * k * n)) {
    multiply(0, count);
    return result;
  }
  OneBlasThread one;
  at::parallel_for(0, count, 1, multiply);
  return result;
}

}  // namespace llmscope::detail

namespace llmscope {

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) {
  // A batch of one matrix by a batch of one is a product by a weight (b's one matrix), whose
  // columns are cut among the threads, where a batch goes matrix by matrix (a matrix whole on one
  // thread, so that its result does not depend on how many others are in the batch).
  const auto one_matrix = [](const at::Tensor& t) {
    if (t.dim() < 3) return false;
    const auto lead = t.sizes().slice(0, t.dim() - 2);
    return std::all_of(lead.begin(), lead.end(), [](int64_t d) { return d == 1; });
  };
  if (a.dim() == b.dim() && one_matrix(a) && one_matrix(b)) {
    return detail::threaded_matmul(a, b.reshape({b.size(-2), b.size(-1)}));
  }
  return detail::threaded_matmul(a, b);
}

const char* cpu_float32_products() {
  const bool own = detail::sgemm_applies(at::Tensor(), at::empty({1, 16}), at::empty({16, 16}));
  return own ? "llmscope's AVX2 kernel" : "the BLAS";
}

}  // namespace llmscope
