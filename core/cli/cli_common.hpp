// Pieces every subcommand shares: the command table, model options (--model, --dtype,
// --device), input options (--text, --ids), and turning parse errors into usage errors.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llmscope/lua/host.hpp"
#include "llmscope/memory_cap.hpp"
#include "llmscope/model.hpp"
#include "llmscope/stop_signals.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope::cli {

namespace po = boost::program_options;

// Thrown for bad command-line usage; main() prints it with the subcommand's help, exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Command {
  const char* name;
  const char* summary;
  std::function<int(const std::vector<std::string>& args)> run;
};
const std::vector<Command>& commands();

int run_info(const std::vector<std::string>& args);
int run_tokenize(const std::vector<std::string>& args);
int run_train_tokenizer(const std::vector<std::string>& args);
int run_capture(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
int run_fill_mask(const std::vector<std::string>& args);
int run_script(const std::vector<std::string>& args);
int run_repl(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
int run_plugins(const std::vector<std::string>& args);
int run_pull(const std::vector<std::string>& args);
int run_lesson(const std::vector<std::string>& args);
int run_train(const std::vector<std::string>& args);

// --nproc and --dist-timeout (run, lesson run).
void add_job_options(po::options_description& options);
// Runs `run` as this process's part of a job: with --nproc N > 1 outside a job, starts N ranks of
// `command` (this subcommand's arguments, "run" or "lesson" first) and waits for them; inside a
// job (RANK in the environment), joins it first, rank > 0 writing under out_dir/ranks/rank-R.
int run_as_job(const po::variables_map& vm, const std::vector<std::string>& command,
               lua::HostOptions options, const std::function<int(lua::HostOptions)>& run);

// Parses `args` against `options`; prints help and returns false when --help was given.
bool parse_args(const std::string& command, const std::string& usage,
                const std::vector<std::string>& args, po::options_description& options,
                po::variables_map& vm,
                const po::positional_options_description* positional = nullptr);

// A file or folder shipped with llmscope (`lessons`, `models/brown-gpt2`): from the source tree
// this binary was built from, else installed under <prefix>/share/llmscope/.
std::filesystem::path shipped_path(const std::string& relative);
// The built-in model (trained by llmscope on the Brown corpus), unless $LLMSCOPE_MODEL names
// another.
std::string default_model_dir();

// The process's peak resident memory so far (getrusage), in bytes: what `info` and `bench`
// report, so loading a checkpoint can be compared with its size on disk.
int64_t peak_resident_bytes();
// The size of the *.safetensors files in `folder` (0 when there are none).
int64_t weights_on_disk(const std::filesystem::path& folder);

// --model, --dtype, --device, --plugin-path, --timeout and --max-memory for commands that run Lua
// (run, repl, lesson).
void add_host_options(po::options_description& options);
lua::HostOptions host_options(const po::variables_map& vm);
// The command's own arguments, and everything after "--", which belongs to the Lua script.
std::pair<std::vector<std::string>, std::vector<std::string>> split_script_args(
    const std::vector<std::string>& all);
// out/<name>/<YYYYmmdd-HHMMSS>/ (-2, -3... for runs started in the same second), created.
std::filesystem::path timestamped_out_dir(const std::filesystem::path& name);

void add_model_options(po::options_description& options);
std::unique_ptr<Model> load_model_from(const po::variables_map& vm);

// --text T | --ids 1,2,3 -> [1, pos] int64 ids (text needs the model's tokenizer).
void add_text_or_ids_options(po::options_description& options);
at::Tensor input_ids_from(const po::variables_map& vm, const Tokenizer* tokenizer,
                          bool allow_special);
std::vector<int64_t> parse_id_list(const std::string& text);

}  // namespace llmscope::cli
