// A command started in the background, for tests that signal a real process (Ctrl-C, SIGTERM)
// while it works: its output goes to a file, and waiting is bounded.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "golden.hpp"

namespace llmscope::testing {

class ChildProcess {
 public:
  // Runs `command_line` with /bin/sh (exec'd, so the pid is the command's own), stdout and
  // stderr into `log`.
  ChildProcess(const std::string& command_line, std::filesystem::path log) : log_(std::move(log)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string line = "exec " + command_line + " >'" + log_.string() + "' 2>&1";
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~ChildProcess() {
    if (running_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // Polls `ready` every 20 ms for up to `seconds`; false if it never held or the process ended.
  bool wait_for(const std::function<bool()>& ready, double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      if (ready()) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        running_ = false;
        exit_code_ = decode(status);
        return ready();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // The exit code (128 + signal when killed by one), or -1 after `seconds` (then killed).
  int wait(double seconds) {
    if (!running_) return exit_code_;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        running_ = false;
        exit_code_ = decode(status);
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  std::string output() const { return read_text_file(log_); }

 private:
  static int decode(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
  }

  std::filesystem::path log_;
  pid_t pid_ = -1;
  bool running_ = true;
  int exit_code_ = -1;
};

}  // namespace llmscope::testing
