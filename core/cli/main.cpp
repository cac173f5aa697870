// llmscope: the command-line entry point. Dispatches to one subcommand, sets up logging, and
// turns every error into one line on stderr and a non-zero exit code.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <torch/version.h>

#include <iostream>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/process_tuning.hpp"

namespace {

void print_usage(std::ostream& out) {
  out << "usage: llmscope [-v|-q] <command> [options]\n\ncommands:\n";
  for (const auto& command : llmscope::cli::commands()) {
    const std::string name = command.name;  // longer than the column ("train-tokenizer"): one space
    out << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ')
        << command.summary << "\n";
  }
  out << "\n`llmscope <command> --help` shows a command's options.\n"
         "global options: -v/--verbose (debug logging), -q/--quiet (errors only), --version\n";
}

}  // namespace

int main(int argc, char** argv) {
  llmscope::tune_process();
  auto logger = spdlog::stderr_color_mt("llmscope");
  logger->set_pattern("[%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);

  std::vector<std::string> args(argv + 1, argv + argc);
  // Global flags may come before the command.
  size_t first = 0;
  for (; first < args.size() && args[first].rfind("-", 0) == 0; ++first) {
    const auto& flag = args[first];
    if (flag == "-v" || flag == "--verbose") {
      spdlog::set_level(spdlog::level::debug);
    } else if (flag == "-q" || flag == "--quiet") {
      spdlog::set_level(spdlog::level::err);
    } else if (flag == "--version") {
      std::cout << "llmscope 0.1.0 (libtorch " << TORCH_VERSION << ")\n";
      return 0;
    } else if (flag == "-h" || flag == "--help") {
      print_usage(std::cout);
      return 0;
    } else {
      std::cerr << "llmscope: unknown option '" << flag << "'\n";
      print_usage(std::cerr);
      return 2;
    }
  }
  if (first == args.size()) {
    print_usage(std::cerr);
    return 2;
  }
  const std::string name = args[first];
  std::vector<std::string> rest;
  for (size_t i = first + 1; i < args.size(); ++i) {
    // Verbosity flags are accepted after the command too.
    if (args[i] == "-v" || args[i] == "--verbose") {
      spdlog::set_level(spdlog::level::debug);
    } else if (args[i] == "-q" || args[i] == "--quiet") {
      spdlog::set_level(spdlog::level::err);
    } else {
      rest.push_back(args[i]);
    }
  }
  for (const auto& command : llmscope::cli::commands()) {
    if (name != command.name) continue;
    try {
      return command.run(rest);
    } catch (const llmscope::cli::UsageError& e) {
      std::cerr << "llmscope " << name << ": " << e.what() << "\n";
      return 2;
    } catch (const llmscope::Error& e) {
      std::cerr << "llmscope " << name << ": error: " << e.what() << "\n";
      return 1;
    } catch (const c10::Error& e) {
      std::cerr << "llmscope " << name << ": error: " << e.what_without_backtrace() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "llmscope " << name << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "llmscope: unknown command '" << name << "'\n";
  print_usage(std::cerr);
  return 2;
}
