// Ctrl-C and SIGTERM sent to real llmscope processes: a run stops at its next Lua instruction
// with its report written and marked; train stops at the next step with a checkpoint, leaves no
// model.safetensors that could pass for a trained one, and resumes to the very weights of an
// uninterrupted run; two runs never share a report folder.
#include <gmock/gmock.h>

#include <fstream>

#include "child_process.hpp"
#include "golden.hpp"
#include "llmscope/sha256.hpp"
#include "llmscope_command.hpp"

namespace llmscope::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string cli_line(const std::vector<std::string>& args) {
  std::string line = shell_quote(LLMSCOPE_CLI);
  for (const auto& a : args) line += " " + shell_quote(a);
  return line;
}

// A script that says it started, then works forever.
fs::path endless_script(const fs::path& dir) {
  const auto script = dir / "endless.lua";
  std::ofstream(script) << "local f = assert(io.open(arg[1], 'w'))\nf:write('started')\nf:close()\n"
                           "report.text('work before the signal')\n"
                           "local n = 0\nwhile true do n = n + 1 end\n";
  return script;
}

// `llmscope run` of the endless script into dir/report, stopped by `sig` once it has started:
// the exit code and the report are what a user finds afterwards.
void stop_a_run(int sig, const std::string& status) {
  const auto dir = scratch_dir("stopped_run_" + std::to_string(sig));
  const auto started = dir / "started";
  ChildProcess run(cli_line({"run", endless_script(dir).string(), "--out",
                             (dir / "report").string(), "--", started.string()}),
                   dir / "log.txt");
  ASSERT_TRUE(run.wait_for([&] { return fs::exists(started); }, 60)) << run.output();
  run.signal(sig);
  EXPECT_EQ(run.wait(30), 128 + sig) << run.output();
  EXPECT_THAT(run.output(), HasSubstr(status));
  EXPECT_THAT(run.output(), HasSubstr((dir / "report" / "report.html").string()));
  const std::string report = read_text_file(dir / "report" / "report.html");
  EXPECT_THAT(report, HasSubstr(status));
  EXPECT_THAT(report, HasSubstr("work before the signal"));
}

TEST(Interrupt, SigtermStopsARunWithItsReportMarked) {
  stop_a_run(SIGTERM, "terminated (SIGTERM)");
}

TEST(Interrupt, CtrlCStopsARunWithItsReportMarked) { stop_a_run(SIGINT, "interrupted"); }

TEST(Interrupt, TwoRunsNeverShareAReportFolder) {
  const auto dir = scratch_dir("shared_out");
  const auto started = dir / "started";
  ChildProcess first(cli_line({"run", endless_script(dir).string(), "--out",
                               (dir / "report").string(), "--", started.string()}),
                     dir / "first.txt");
  ASSERT_TRUE(first.wait_for([&] { return fs::exists(started); }, 60)) << first.output();
  const auto script = dir / "quick.lua";
  std::ofstream(script) << "report.text('second')\n";
  auto second = llmscope({"run", script.string(), "--out", (dir / "report").string()});
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_THAT(second.output, HasSubstr("is in use by another llmscope run"));
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait(30), 128 + SIGTERM);
  EXPECT_THAT(read_text_file(dir / "report" / "report.html"), ::testing::Not(HasSubstr("second")));
  // Free again once the first run is over.
  EXPECT_EQ(llmscope({"run", script.string(), "--out", (dir / "report").string()}).exit_code, 0);

  // Without --out, runs started in the same second get folders of their own.
  const auto cwd = dir / "cwd";
  fs::create_directories(cwd);
  const std::string line = "sh -c " + shell_quote("cd " + shell_quote(cwd.string()) + " && exec " +
                                                  cli_line({"run", script.string()}));
  ChildProcess a(line, dir / "a.txt"), b(line, dir / "b.txt"), c(line, dir / "c.txt");
  EXPECT_EQ(a.wait(60), 0) << a.output();
  EXPECT_EQ(b.wait(60), 0) << b.output();
  EXPECT_EQ(c.wait(60), 0) << c.output();
  int folders = 0;
  for (const auto& entry : fs::directory_iterator(cwd / "out" / "quick")) {
    folders += fs::exists(entry.path() / "report.html");
  }
  EXPECT_EQ(folders, 3);
}

fs::path story(const fs::path& dir) {
  std::ofstream out(dir / "story.txt");
  const char* words[] = {"the cat", "a dog", "saw", "liked", "the house.", "a boat."};
  for (int p = 0; p < 60; ++p) {
    for (int s = 0; s < 6; ++s) out << words[(p + s) % 6] << " " << words[(p * 5 + s) % 6] << " ";
    out << "\n\n";
  }
  return dir / "story.txt";
}

fs::path recipe(const fs::path& dir) {
  std::ofstream(dir / "recipe.json")
      << R"({"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 16, "vocab_size": 280,
             "context": 8, "batch_size": 4, "steps": 3000, "warmup_steps": 4, "lr": 0.003,
             "min_lr": 0.0003, "eval_every": 1000, "eval_tokens": 256, "checkpoint_every": 100000,
             "validation_every": 5, "threads": 1})";
  return dir / "recipe.json";
}

int64_t log_rows(const fs::path& path) {
  std::ifstream in(path);
  int64_t rows = -1;  // the header
  for (std::string line; std::getline(in, line);) ++rows;
  return rows;
}

TEST(Interrupt, CtrlCStopsTrainingWithACheckpointThatResumesExactly) {
  const auto dir = scratch_dir("sigint_train");
  const auto out = dir / "model";
  const std::vector<std::string> train = {
      "train",   "--recipe", recipe(dir).string(), "--text", story(dir).string(), "--save-dtype",
      "float32", "--out"};
  auto args = train;
  args.push_back(out.string());
  ChildProcess run(cli_line(args), dir / "log.txt");
  ASSERT_TRUE(run.wait_for([&] { return log_rows(out / "training_log.csv") >= 20; }, 120))
      << run.output();
  run.signal(SIGINT);
  ASSERT_EQ(run.wait(30), 130) << run.output();
  EXPECT_THAT(run.output(), HasSubstr("interrupted at step"));
  EXPECT_THAT(run.output(), HasSubstr("--resume"));
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));  // nothing passes for a trained model
  int checkpoints = 0;
  for (const auto& entry : fs::directory_iterator(out)) {
    checkpoints += entry.path().filename().string().rfind("checkpoint-", 0) == 0;
  }
  EXPECT_EQ(checkpoints, 1);

  // Without --resume or --force the folder is refused; with --resume the run completes.
  auto refused = llmscope(args);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.output, HasSubstr("pass --resume to continue it or --force"));
  args.push_back("--resume");
  auto resumed = llmscope(args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(log_rows(out / "training_log.csv"), 3000);
  for (const auto& entry : fs::directory_iterator(out)) {
    EXPECT_NE(entry.path().filename().string().rfind("checkpoint-", 0), 0u) << entry.path();
  }

  auto whole_args = train;
  whole_args.push_back((dir / "whole").string());
  auto whole = llmscope(whole_args);
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  EXPECT_EQ(sha256_file(out / "model.safetensors"),
            sha256_file(dir / "whole" / "model.safetensors"));
}

}  // namespace
}  // namespace llmscope::testing
