#include "llmscope/stop_signals.hpp"

namespace llmscope {

namespace {

volatile std::sig_atomic_t received_signal = 0;
void (*volatile then_run)(int) = nullptr;

void on_stop_signal(int signal) {
  received_signal = signal;
  std::signal(signal, SIG_DFL);
  if (then_run) then_run(signal);
}

}  // namespace

StopSignals::StopSignals(void (*on_signal)(int)) {
  received_signal = 0;
  then_run = on_signal;
  int_ = std::signal(SIGINT, on_stop_signal);
  term_ = std::signal(SIGTERM, on_stop_signal);
}

StopSignals::~StopSignals() {
  std::signal(SIGINT, int_);
  std::signal(SIGTERM, term_);
  then_run = nullptr;
}

int StopSignals::received() { return received_signal; }

}  // namespace llmscope
