// A job of several llmscope processes (ranks) on one or many machines, joined the way PyTorch
// jobs are (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, as torchrun, Slurm and
// Kubernetes launchers set them) over libtorch's c10d: a TCPStore for the rendezvous and a
// ProcessGroupGloo for the collectives on CPU tensors. Outside a job every collective is a no-op
// that returns its input, so code written for a job runs unchanged in one process.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llmscope::dist {

struct JobSpec {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_s = 300;  // rendezvous and every collective; a dead peer fails the job after it
};

// The job the environment describes (RANK and WORLD_SIZE set), or nullopt. Throws llmscope::Error
// naming the variable for a malformed or inconsistent one.
std::optional<JobSpec> job_from_environment(double timeout_s = 300);

// Joins the job: the store at master_addr:master_port (rank 0 serves it), then the process group,
// and registers its collectives for the core (llmscope/job.hpp: plugins and reducers).
// Throws llmscope::Error naming the address tried when the store cannot be reached in time.
void join(const JobSpec& spec);
// This process's rank and the job's size are llmscope/job.hpp's (rank(), world_size()): the
// one record that plugins and the reducers read too.

enum class ReduceOp { sum, mean, max, min };
ReduceOp parse_reduce_op(const std::string& name);  // "sum" | "mean" | "max" | "min"

// Collectives over every rank, on CPU copies (the result comes back on `t`'s device and dtype).
// Each throws llmscope::Error when a rank is gone or the timeout passes.
at::Tensor all_reduce(const at::Tensor& t, ReduceOp op);
at::Tensor all_gather(const at::Tensor& t);  // [world_size, ...t.shape]; shapes must agree
at::Tensor broadcast(const at::Tensor& t, int root);
void barrier();

}  // namespace llmscope::dist
