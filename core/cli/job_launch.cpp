// Running a script as a job of several ranks (docs/distributed.md): `--nproc N` starts N local
// copies of this command joined over 127.0.0.1, as torchrun would; a process started by a
// launcher (RANK and WORLD_SIZE in its environment) joins the job before its script runs.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli_common.hpp"
#include "llmscope/distributed.hpp"
#include "llmscope/error.hpp"

namespace llmscope::cli {

namespace {

namespace fs = std::filesystem;

// A TCP port nobody listens on now, for the job's store.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) ::close(fd);
    throw Error("cannot find a free TCP port on 127.0.0.1 for the job's store");
  }
  const int port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

// `args` with "--out DIR" before the script's own arguments ("--"), unless it names one.
std::vector<std::string> with_out(std::vector<std::string> args, const fs::path& out) {
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "--out" || a == "-o" || a.rfind("--out=", 0) == 0) return args;
  }
  const auto split = std::find(args.begin(), args.end(), "--");
  args.insert(split, {"--out", out.string()});
  return args;
}

std::string tail_of(const fs::path& log, size_t lines) {
  std::ifstream in(log);
  std::vector<std::string> kept;
  for (std::string line; std::getline(in, line);) {
    kept.push_back(line);
    if (kept.size() > lines) kept.erase(kept.begin());
  }
  std::string text;
  for (const auto& line : kept) text += "    " + line + "\n";
  return text;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int launch_local_job(int nproc, const std::vector<std::string>& command, const fs::path& out) {
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const std::vector<std::string> args = with_out(command, out);
  const int port = free_port();
  fs::create_directories(out / "ranks");
  std::cerr << "job: " << nproc << " ranks on 127.0.0.1:" << port << "; rank 0 writes "
            << out.string() << ", the others log to " << (out / "ranks").string() << "/\n";
  const int cores = static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  std::vector<pid_t> ranks(static_cast<size_t>(nproc), -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error("cannot start rank " + std::to_string(r) + ": fork failed");
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      // The machine's cores shared out, as torchrun does, unless the user chose: N ranks each
      // running a full-width BLAS would oversubscribe the cores.
      const std::string share = std::to_string(std::max(1, cores / nproc));
      ::setenv("OMP_NUM_THREADS", share.c_str(), 0);
      ::setenv("OPENBLAS_NUM_THREADS", share.c_str(), 0);
      if (r > 0) {
        const auto log = out / "ranks" / ("rank-" + std::to_string(r) + ".log");
        std::FILE* file = std::fopen(log.c_str(), "w");
        if (file) {
          ::dup2(fileno(file), STDOUT_FILENO);
          ::dup2(fileno(file), STDERR_FILENO);
        }
      }
      std::vector<char*> argv = {const_cast<char*>(exe.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    ranks[static_cast<size_t>(r)] = pid;
  }
  // Wait for every rank; the first to fail stops the others (they would wait on it in a
  // collective until the timeout).
  StopSignals signals;
  std::vector<int> codes(static_cast<size_t>(nproc), 0);
  std::vector<bool> stopped(static_cast<size_t>(nproc), false);  // ended by our own signal
  std::vector<int> ended;                                        // ranks in the order they ended
  int running = nproc, interrupted = 0;
  bool stopping = false, killing = false;
  auto stop_others = [&] {
    if (stopping) return;
    stopping = true;
    for (const pid_t pid : ranks) {
      if (pid > 0) ::kill(pid, SIGTERM);
    }
  };
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      const auto it = std::find(ranks.begin(), ranks.end(), done);
      if (it == ranks.end()) continue;
      const int r = static_cast<int>(it - ranks.begin());
      *it = -1;
      --running;
      const int code = exit_code_of(status);
      codes[static_cast<size_t>(r)] = code;
      ended.push_back(r);
      stopped[static_cast<size_t>(r)] =
          (stopping && code == 128 + SIGTERM) || (killing && code == 128 + SIGKILL);
      if (code != 0 && !stopping) {
        std::cerr << "job: rank " << r << " failed (exit " << code << "); stopping the others\n";
        stop_others();
        stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      }
      continue;
    }
    if (StopSignals::received() != 0 && !stopping) {
      interrupted = StopSignals::received();
      stop_others();
      stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    }
    if (std::chrono::steady_clock::now() > stop_deadline && !killing) {
      killing = true;
      for (const pid_t pid : ranks) {
        if (pid > 0) ::kill(pid, SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The cause: a rank that died (killed by a signal not ours, as the OOM killer does) rather
  // than one that failed because a peer vanished under its collective; else the first rank to
  // fail. Its code is the job's.
  int cause = -1;
  for (const int r : ended) {
    const int code = codes[static_cast<size_t>(r)];
    if (code == 0 || stopped[static_cast<size_t>(r)]) continue;
    if (cause < 0 || (code > 128 && codes[static_cast<size_t>(cause)] <= 128)) cause = r;
  }
  const int job_code = interrupted != 0 ? 128 + interrupted
                       : cause >= 0     ? codes[static_cast<size_t>(cause)]
                                        : 0;
  // Every failed rank's own words are shown, rank 0's having gone to this terminal already.
  for (int r = 1; r < nproc && job_code != 0; ++r) {
    const int code = codes[static_cast<size_t>(r)];
    if (code == 0) continue;
    const auto log = out / "ranks" / ("rank-" + std::to_string(r) + ".log");
    std::string how;
    if (stopped[static_cast<size_t>(r)]) {
      how = " (stopped with the job)";
    } else if (code > 128) {
      how = " (killed by signal " + std::to_string(code - 128) + ")";
    }
    std::cerr << "job: rank " << r << " exited with " << code << how << "; the end of "
              << log.string() << ":\n"
              << tail_of(log, 12);
  }
  if (cause >= 0 && interrupted == 0) {
    std::cerr << "job: failed because rank " << cause << " "
              << (codes[static_cast<size_t>(cause)] > 128
                      ? "was killed by signal " +
                            std::to_string(codes[static_cast<size_t>(cause)] - 128)
                      : "exited with " + std::to_string(codes[static_cast<size_t>(cause)]))
              << "\n";
  }
  return job_code;
}

}  // namespace

void add_job_options(po::options_description& options) {
  options.add_options()("nproc", po::value<int>()->default_value(1),
                        "run as a job of N local processes (ranks) over 127.0.0.1; see "
                        "docs/distributed.md")(
      "dist-timeout", po::value<double>()->default_value(300),
      "seconds a rank waits for the job's store and for the other ranks in a collective");
}

int run_as_job(const po::variables_map& vm, const std::vector<std::string>& command,
               lua::HostOptions options, const std::function<int(lua::HostOptions)>& run) {
  const int nproc = vm["nproc"].as<int>();
  const double timeout = vm["dist-timeout"].as<double>();
  if (nproc < 1 || nproc > 1024) throw UsageError("--nproc must be between 1 and 1024");
  if (!(timeout > 0)) throw UsageError("--dist-timeout must be a positive number of seconds");
  const auto spec = dist::job_from_environment(timeout);
  if (!spec && nproc > 1) return launch_local_job(nproc, command, options.out_dir);
  if (spec) {
    // `--device cuda` means this rank's GPU: cuda:LOCAL_RANK, as PyTorch jobs pick theirs.
    if (options.load.device.is_cuda() && !options.load.device.has_index()) {
      options.load.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(spec->local_rank));
    }
    dist::join(*spec);
    if (spec->rank > 0) {
      // Rank 0's report is the job's; the others keep theirs beside it, for debugging.
      options.out_dir = options.out_dir / "ranks" / ("rank-" + std::to_string(spec->rank));
      options.quiet = true;
    }
  }
  const int code = run(std::move(options));
  if (spec && spec->world_size > 1) {
    // Leave at once: the report is written, and tearing down the process group while other
    // ranks go away too can hang or abort, which would hide this rank's own exit code.
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}

}  // namespace llmscope::cli
