// The `log` module (spdlog levels, logger "lua") and `progress` (a bar on stderr for long
// loops, silent when stderr is not a terminal or with -q). In a job of several ranks rank 0 draws
// the job's progress: every rank adds its bar's total and steps to counters in the job's store.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "binding.hpp"
#include "host_context.hpp"
#include "llmscope/job.hpp"

namespace llmscope::lua {
namespace {

std::shared_ptr<spdlog::logger> lua_logger() {
  auto logger = spdlog::get("lua");
  if (!logger) {
    logger = spdlog::stderr_color_mt("lua");
    logger->set_pattern("[%^%l%$] [lua] %v");
  }
  logger->set_level(spdlog::get_level());  // follows -v / -q
  return logger;
}

// All arguments, converted like print() does, joined by spaces.
std::string message_of(lua_State* L) {
  std::string message;
  for (int i = 1; i <= lua_gettop(L); ++i) {
    if (i > 1) message += " ";
    size_t length = 0;
    const char* text = luaL_tolstring(L, i, &length);  // may run __tostring; none of ours raise
    message.append(text, length);
    lua_pop(L, 1);
  }
  return message;
}

template <spdlog::level::level_enum Level>
int log_at(lua_State* L) {
  lua_logger()->log(Level, message_of(L));
  return 0;
}

struct Progress {
  int64_t total = 0;
  int64_t done = 0;  // this rank's steps
  std::string label;
  bool visible = false;
  bool closed = false;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw{};
  // In a job: the bar's counters in the store (bars are numbered in the order a rank makes them,
  // which is the same on every rank running the same script), this rank's steps not yet added,
  // and the job's totals as last read.
  std::string job_key;
  int64_t unsent = 0;
  int64_t job_total = 0, job_done = 0;
  std::chrono::steady_clock::time_point last_sent{};

  bool in_job() const { return !job_key.empty(); }
  void join_job(int64_t sequence) {
    job_key = "progress/" + std::to_string(sequence);
    job_total = job::add_to_counter(job_key + "/total", total);
  }
  // At most 4 round trips to the store a second, and always at the end of this rank's share.
  void send(bool force) {
    if (!in_job()) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_sent < std::chrono::milliseconds(250)) return;
    last_sent = now;
    job_done = job::add_to_counter(job_key + "/done", unsent);
    job_total = job::add_to_counter(job_key + "/total", 0);
    unsent = 0;
  }
  void step(int64_t n) {
    done += n;
    unsent += n;
    send(done >= total);
    draw(done >= total);
  }

  void draw(bool force) {
    if (!visible || closed) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_draw < std::chrono::milliseconds(100)) return;  // at most 10 redraws/s
    last_draw = now;
    const int64_t shown_done = in_job() ? job_done : done;
    const int64_t shown_total = in_job() ? job_total : total;
    double seconds = std::chrono::duration<double>(now - start).count();
    double fraction =
        shown_total > 0
            ? std::min(1.0, static_cast<double>(shown_done) / static_cast<double>(shown_total))
            : 0.0;
    const int width = 30;
    int filled = static_cast<int>(fraction * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '-');
    double rate = seconds > 0 ? static_cast<double>(shown_done) / seconds : 0.0;
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %5.1f%% %.1f it/s%s", label.c_str(), bar.c_str(),
                 static_cast<long long>(shown_done), static_cast<long long>(shown_total),
                 100 * fraction, rate, in_job() ? " (job)" : "");
    std::fflush(stderr);
  }
  void close() {
    if (closed) return;
    try {
      send(true);
    } catch (const std::exception&) {
      // The job is failing (the store is gone); its error is reported elsewhere.
    }
    draw(true);
    if (visible) std::fputc('\n', stderr);
    closed = true;
  }
  ~Progress() { close(); }
};

Progress& check_progress(lua_State* L, int arg) {
  return check_userdata<Progress>(L, arg, kProgressType, "progress bar");
}

// progress.new(total, label?) -> bar
int progress_new(lua_State* L) {
  int64_t total = check_integer(L, 1);
  if (total < 0) throw ArgError(1, "total must be >= 0");
  std::string label = is_none_or_nil(L, 2) ? "" : check_string(L, 2);
  // In a job only rank 0 draws (torchrun and srun may give every rank the same terminal).
  bool visible = isatty(STDERR_FILENO) && !host_context(L).options.quiet &&
                 spdlog::get_level() <= spdlog::level::info && job::is_main();
  Progress& bar = push_userdata<Progress>(L, kProgressType);
  bar.total = total;
  bar.label = label;
  bar.visible = visible;
  if (job::world_size() > 1) bar.join_job(host_context(L).progress_bars++);
  bar.draw(true);
  return 1;
}

int progress_update(lua_State* L) {
  Progress& bar = check_progress(L, 1);
  bar.step(is_none_or_nil(L, 2) ? 1 : check_integer(L, 2));
  return 0;
}

int progress_close(lua_State* L) {
  check_progress(L, 1).close();
  return 0;
}

int progress_count(lua_State* L) {
  lua_pushinteger(L, check_progress(L, 1).done);
  return 1;
}

// The iterator behind progress.range: yields 0 .. n-1 and advances the bar.
int range_next(lua_State* L) {
  Progress& bar = check_progress(L, lua_upvalueindex(1));
  if (bar.done >= bar.total) {
    bar.close();
    return 0;
  }
  lua_pushinteger(L, bar.done);
  bar.step(1);
  return 1;
}

// for i in progress.range(n, label) do ... end   (i = 0 .. n-1)
int progress_range(lua_State* L) {
  progress_new(L);
  lua_pushcclosure(L, entry<range_next>, 1);
  return 1;
}

const luaL_Reg kProgressMethods[] = {
    {"update", entry<progress_update>},
    {"close", entry<progress_close>},
    {"count", entry<progress_count>},
    {nullptr, nullptr},
};

}  // namespace

void open_log(lua_State* L) {
  const luaL_Reg log_functions[] = {
      {"debug", entry<log_at<spdlog::level::debug>>},
      {"info", entry<log_at<spdlog::level::info>>},
      {"warn", entry<log_at<spdlog::level::warn>>},
      {"error", entry<log_at<spdlog::level::err>>},
      {nullptr, nullptr},
  };
  luaL_newlib(L, log_functions);
  lua_setglobal(L, "log");

  new_type(L, kProgressType, kProgressMethods, destroy_userdata<Progress>);
  lua_pushcfunction(L, entry<progress_close>);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  const luaL_Reg progress_functions[] = {
      {"new", entry<progress_new>},
      {"range", entry<progress_range>},
      {nullptr, nullptr},
  };
  luaL_newlib(L, progress_functions);
  lua_setglobal(L, "progress");
}

}  // namespace llmscope::lua
