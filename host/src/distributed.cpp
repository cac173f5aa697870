// The job's process group (llmscope/distributed.hpp): c10d's TCPStore and ProcessGroupGloo,
// behind a small API so no other unit compiles c10d's headers.
#include "llmscope/distributed.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>

#include "llmscope/error.hpp"
#include "llmscope/job.hpp"

namespace llmscope::dist {

namespace {

struct Job {
  JobSpec spec;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

Job& job() {
  static Job state;
  return state;
}

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int env_int(const char* name, int fallback, int low, int high) {
  const auto text = env(name);
  if (!text) return fallback;
  try {
    size_t used = 0;
    const long value = std::stol(*text, &used);
    if (used == text->size() && value >= low && value <= high) return static_cast<int>(value);
  } catch (const std::exception&) {
  }
  throw Error("the environment's " + std::string(name) + " is '" + *text +
              "'; expected a number in [" + std::to_string(low) + ", " + std::to_string(high) +
              "]");
}

bool in_job() { return job().group != nullptr; }
int world_size() { return in_job() ? job().spec.world_size : 1; }

std::string where() {
  return "rank " + std::to_string(job().spec.rank) + " of " + std::to_string(job().spec.world_size);
}

// Runs one collective, turning c10d's and Gloo's errors into ours.
template <class F>
void collective(const char* what, F&& run) {
  try {
    run()->wait(std::chrono::milliseconds(static_cast<int64_t>(job().spec.timeout_s * 1000)));
  } catch (const std::exception& e) {
    throw Error(std::string("dist.") + what + " failed on " + where() +
                " (another rank stopped, or the job's timeout of " +
                std::to_string(static_cast<int>(job().spec.timeout_s)) +
                " s passed): " + std::string(e.what()).substr(0, 400));
  }
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::max:
      return c10d::ReduceOp::MAX;
    case ReduceOp::min:
      return c10d::ReduceOp::MIN;
    default:
      return c10d::ReduceOp::SUM;
  }
}

}  // namespace

std::optional<JobSpec> job_from_environment(double timeout_s) {
  if (!env("WORLD_SIZE") && !env("RANK")) return std::nullopt;
  JobSpec spec;
  spec.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  spec.rank = env_int("RANK", 0, 0, spec.world_size - 1);
  spec.local_rank = env_int("LOCAL_RANK", 0, 0, 1 << 20);
  spec.master_addr = env("MASTER_ADDR").value_or("127.0.0.1");
  spec.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  spec.timeout_s = timeout_s;
  return spec;
}

void join(const JobSpec& spec) {
  Job& state = job();
  if (state.group) throw Error("this process already joined a job");
  state.spec = spec;
  if (spec.world_size == 1) return;
  const std::string address = spec.master_addr + ":" + std::to_string(spec.master_port);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(spec.timeout_s * 1000));
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(spec.master_port);
    options.isServer = spec.rank == 0;
    options.numWorkers = spec.world_size;
    options.waitWorkers = false;
    options.timeout = timeout;
    state.store = c10::make_intrusive<c10d::TCPStore>(spec.master_addr, options);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(spec.rank) + " could not " +
                (spec.rank == 0 ? "serve" : "reach") + " the job's store at " + address +
                " (MASTER_ADDR:MASTER_PORT) within " +
                std::to_string(static_cast<int>(spec.timeout_s)) +
                " s: " + std::string(e.what()).substr(0, 300));
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = timeout;
    // Loopback jobs stay on loopback; GLOO_SOCKET_IFNAME picks the interface as in PyTorch.
    const bool loopback = spec.master_addr == "127.0.0.1" || spec.master_addr == "localhost";
    if (loopback) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else if (const auto interface = env("GLOO_SOCKET_IFNAME")) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*interface));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    state.group = c10::make_intrusive<c10d::ProcessGroupGloo>(state.store, spec.rank,
                                                              spec.world_size, options);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(spec.rank) + " of " + std::to_string(spec.world_size) +
                " could not connect to the other ranks (store " + address +
                "): " + std::string(e.what()).substr(0, 300));
  }
  job::Collectives collectives;
  collectives.rank = spec.rank;
  collectives.world_size = spec.world_size;
  collectives.all_reduce_sum = [](const at::Tensor& t) { return all_reduce(t, ReduceOp::sum); };
  collectives.all_gather = [](const at::Tensor& t) { return all_gather(t); };
  collectives.add_to_counter = [](const std::string& key, int64_t delta) -> int64_t {
    try {
      return job().store->add("llmscope/counter/" + key, delta);
    } catch (const std::exception& e) {
      throw Error("the job's counter '" + key + "' failed on " + where() +
                  " (the store at rank 0 is gone?): " + std::string(e.what()).substr(0, 300));
    }
  };
  job::set_collectives(std::move(collectives));
}

ReduceOp parse_reduce_op(const std::string& name) {
  if (name == "sum") return ReduceOp::sum;
  if (name == "mean") return ReduceOp::mean;
  if (name == "max") return ReduceOp::max;
  if (name == "min") return ReduceOp::min;
  throw Error("unknown reduction '" + name + "' (expected sum, mean, max or min)");
}

at::Tensor all_reduce(const at::Tensor& t, ReduceOp op) {
  if (!in_job()) return t;
  // Means are exact sums divided once; integer tensors are reduced as float64 for the mean.
  at::Tensor work =
      t.detach()
          .to(at::kCPU,
              op == ReduceOp::mean && !t.is_floating_point() ? at::kDouble : t.scalar_type())
          .contiguous()
          .clone();
  std::vector<at::Tensor> tensors = {work};
  c10d::AllreduceOptions options;
  options.reduceOp = to_c10d(op);
  collective("all_reduce", [&] { return job().group->allreduce(tensors, options); });
  if (op == ReduceOp::mean) work.div_(world_size());
  return work.to(t.device());
}

at::Tensor all_gather(const at::Tensor& t) {
  if (!in_job()) return t.unsqueeze(0);
  at::Tensor mine = t.detach().to(at::kCPU).contiguous();
  std::vector<at::Tensor> parts;
  for (int r = 0; r < world_size(); ++r) parts.push_back(at::empty_like(mine));
  std::vector<std::vector<at::Tensor>> outputs = {parts};
  std::vector<at::Tensor> inputs = {mine};
  collective("all_gather", [&] { return job().group->allgather(outputs, inputs); });
  return at::stack(outputs[0]).to(t.device());
}

at::Tensor broadcast(const at::Tensor& t, int root) {
  if (root < 0 || root >= world_size()) {
    throw Error("dist.broadcast: root " + std::to_string(root) + " is not a rank (0 to " +
                std::to_string(world_size() - 1) + ")");
  }
  if (!in_job()) return t;
  std::vector<at::Tensor> tensors = {t.detach().to(at::kCPU).contiguous().clone()};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  collective("broadcast", [&] { return job().group->broadcast(tensors, options); });
  return tensors[0].to(t.device());
}

void barrier() {
  if (!in_job()) return;
  collective("barrier", [&] { return job().group->barrier(); });
}

}  // namespace llmscope::dist
