#include "golden.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

namespace llmscope::testing {

std::filesystem::path golden_dir() { return LLMSCOPE_GOLDEN_DIR; }

std::filesystem::path golden_path(const std::string& relative) { return golden_dir() / relative; }

std::filesystem::path scratch_dir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string unique = info ? std::string(info->test_suite_name()) + "." + info->name() : "global";
  auto dir = std::filesystem::temp_directory_path() / "llmscope-tests" / unique / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write test file " + path.string());
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

::testing::AssertionResult matches_hook_snapshot(const HookPointTable& table,
                                                 const std::string& snapshot) {
  std::ostringstream actual;
  for (const auto& point : table.points()) {
    actual << point.name;
    for (const auto& alias : point.aliases) actual << " = " << alias;
    actual << "  " << point.shape << "\n";
  }
  const auto path = golden_path(snapshot);
  if (std::getenv("LLMSCOPE_UPDATE_SNAPSHOTS")) std::ofstream(path) << actual.str();
  std::ifstream in(path);
  if (!in) return ::testing::AssertionFailure() << "missing snapshot " << path;
  std::stringstream expected;
  expected << in.rdbuf();
  if (actual.str() == expected.str()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "hook points differ from " << path << "\nactual:\n"
                                       << actual.str();
}

CommandResult run_command(const std::string& command_line) {
  FILE* pipe = popen((command_line + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string shell_quote(const std::string& argument) {
  std::string out = "'";
  for (char c : argument) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected,
                                         double rtol, double atol, const at::Tensor& mask) {
  if (!actual.defined()) return ::testing::AssertionFailure() << "actual tensor is undefined";
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " differs from expected " << expected.sizes();
  }
  auto a = actual.detach().to(at::kCPU, at::kDouble);
  auto e = expected.detach().to(at::kCPU, at::kDouble);
  // NaN where the reference has NaN is agreement; NaN anywhere else is the worst error.
  auto nan_agree = a.isnan().logical_and(e.isnan());
  auto excess =
      ((a - e).abs() - (atol + rtol * e.abs())).nan_to_num(std::numeric_limits<double>::infinity());
  excess = excess.masked_fill(nan_agree, -1.0);
  if (mask.defined()) excess = excess.masked_fill(mask.logical_not(), -1.0);
  auto flat = excess.reshape(-1);
  if (flat.numel() == 0) return ::testing::AssertionSuccess();
  int64_t worst = flat.argmax().item<int64_t>();
  if (flat[worst].item<double>() <= 0) return ::testing::AssertionSuccess();
  // Unravel the flat index so the message points at [b, t, d].
  std::ostringstream where;
  int64_t rest = worst;
  std::vector<int64_t> index(a.dim());
  for (int64_t d = a.dim() - 1; d >= 0; --d) {
    index[d] = rest % a.size(d);
    rest /= a.size(d);
  }
  where << "[";
  for (size_t i = 0; i < index.size(); ++i) where << (i ? ", " : "") << index[i];
  where << "]";
  return ::testing::AssertionFailure()
         << "worst element at " << where.str() << ": actual " << a.reshape(-1)[worst].item<double>()
         << ", expected " << e.reshape(-1)[worst].item<double>() << " (rtol " << rtol << ", atol "
         << atol << "); " << (flat > 0).sum().item<int64_t>() << " of " << flat.numel()
         << " elements out of tolerance";
}

}  // namespace llmscope::testing
