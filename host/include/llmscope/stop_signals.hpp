// Ctrl-C (SIGINT) and SIGTERM as requests to stop at the next safe point (a Lua instruction, a
// training step, a block of a download), for the one process-wide place that owns them.
#pragma once

#include <csignal>

namespace llmscope {

// While one lives, either signal is recorded (received()) and then `on_signal` runs, inside the
// signal handler, so async-signal-safe work only (arming a Lua hook); that signal's default
// action comes back, so a second one ends the process at once. The previous handlers return
// when it goes; received() keeps the last signal until the next StopSignals starts.
class StopSignals {
 public:
  explicit StopSignals(void (*on_signal)(int) = nullptr);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  static int received();  // the signal, or 0

 private:
  void (*int_)(int);
  void (*term_)(int);
};

}  // namespace llmscope
