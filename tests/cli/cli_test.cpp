// The llmscope executable end to end: capture round trip against the Hugging Face goldens,
// info, tokenize, generate, and a clear message with a non-zero exit for bad input.
#include <gmock/gmock.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/safetensors.hpp"
#include "llmscope_command.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;

std::string model_dir() { return golden_path("gpt2-tiny").string(); }

TEST(Cli, CaptureRoundTripMatchesTheGoldens) {
  auto out = scratch_dir("capture") / "out.safetensors";
  auto expected = SafetensorsFile::open(golden_path("gpt2-tiny/expected.safetensors"));
  std::ifstream meta_in(golden_path("gpt2-tiny/meta.json"));
  auto meta = nlohmann::json::parse(meta_in);
  std::vector<std::string> args = {"capture",
                                   "--model",
                                   model_dir(),
                                   "--input",
                                   golden_path("gpt2-tiny/expected.safetensors").string(),
                                   "--logits",
                                   "--hidden-states",
                                   "--attentions",
                                   "-o",
                                   out.string()};
  for (const auto& hook : meta["hooks"]) {
    args.push_back("--hook");
    args.push_back(hook.get<std::string>());
  }
  auto result = llmscope(args);
  ASSERT_EQ(result.exit_code, 0) << result.output;

  auto got = SafetensorsFile::open(out);
  auto valid = expected.tensor("attention_mask").ne(0);
  int compared = 0;
  for (const auto& entry : expected.entries()) {
    const auto& key = entry.name;
    bool per_position =
        key == "logits" || key.rfind("hidden_states.", 0) == 0 || key.rfind("hook.", 0) == 0;
    bool attention = key.rfind("attentions.", 0) == 0;
    if (!per_position && !attention) continue;
    SCOPED_TRACE(key);
    ASSERT_TRUE(got.contains(key));
    auto want = expected.tensor(key);
    auto mask = attention ? valid.view({want.size(0), 1, want.size(2), 1}) : valid.unsqueeze(-1);
    EXPECT_TENSOR_CLOSE(got.tensor(key), want, 1e-4, 1e-4, mask.expand_as(want));
    ++compared;
  }
  EXPECT_EQ(compared, 1 + 4 + 3 + 22);
  EXPECT_TRUE(got.tensor("input_ids").equal(expected.tensor("input_ids")));
}

TEST(Cli, CaptureOfIdsWithAGlobSavesEveryMatch) {
  auto out = scratch_dir("glob") / "out.safetensors";
  auto result = llmscope({"capture", "-m", model_dir(), "--ids", "1,2,3", "--hook",
                          "blocks.*.mlp.hook_post", "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto got = SafetensorsFile::open(out);
  for (int l = 0; l < 3; ++l) {
    auto key = "hook.transformer.h." + std::to_string(l) + ".mlp.act";
    ASSERT_TRUE(got.contains(key)) << key;
    EXPECT_EQ(got.entry(key).shape, (std::vector<int64_t>{1, 3, 256}));
  }
}

TEST(Cli, InfoDescribesTheModel) {
  auto result = llmscope({"info", "--model", model_dir(), "--json", "--hooks", "blocks.1.mlp.*"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto info = nlohmann::json::parse(result.output);
  EXPECT_EQ(info["architecture"], "gpt2");
  EXPECT_EQ(info["n_layer"], 3);
  EXPECT_EQ(info["parameters"], 218176);
  EXPECT_EQ(info["hooks"].size(), 2u);
  EXPECT_EQ(info["hooks"][0]["name"], "transformer.h.1.mlp.c_fc");
}

TEST(Cli, GenerateGreedyMatchesTheGolden) {
  auto result =
      llmscope({"generate", "--model", model_dir(), "--ids", "5,17,42", "-n", "12", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto expected = SafetensorsFile::open(golden_path("gpt2-tiny/expected.safetensors"))
                      .tensor("generate.ids")[0];
  std::vector<int64_t> want(expected.data_ptr<int64_t>(),
                            expected.data_ptr<int64_t>() + expected.numel());
  EXPECT_EQ(nlohmann::json::parse(result.output)["ids"].get<std::vector<int64_t>>(), want);
}

TEST(Cli, BenchTimesEveryCaseTheHooksCostAndTheRoofline) {
  auto result = llmscope({"bench", "--model", model_dir(), "--batch", "2", "--tokens", "8",
                          "--iterations", "2", "--hooks", "3", "--new-tokens", "2", "--roofline",
                          "64", "--threads", "1", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto bench = nlohmann::json::parse(result.output);
  EXPECT_EQ(bench["hooked_sites"], 3);
  EXPECT_EQ(bench["threads"], 1);
  ASSERT_EQ(bench["cases"].size(), 5u);
  for (const auto& c : bench["cases"]) {
    EXPECT_GT(c["ms_per_pass"].get<double>(), 0) << c["name"];
    EXPECT_NEAR(c["tokens_per_s"].get<double>() * c["ms_per_pass"].get<double>() / 1e3, 16, 1e-6)
        << c["name"];
    EXPECT_GT(c["cost_over_baseline"].get<double>(), -1) << c["name"];
  }
  EXPECT_EQ(bench["cases"][0]["cost_over_baseline"], 0.0);  // the baseline itself
  EXPECT_EQ(bench["cases"][1]["name"], "3 native observer hooks");
  ASSERT_EQ(bench["generation"].size(), 2u);
  EXPECT_EQ(bench["generation"][1]["new_tokens"], 2);
  // Two passes a round: a roofline product after each, five rounds.
  const auto& roofline = bench["sgemm_roofline"];
  EXPECT_EQ(roofline["n"], 64);
  EXPECT_EQ(roofline["timed"], 10);
  const bool own = bench["float32_products"] != "the BLAS";
  ASSERT_EQ(roofline["products"].size(), own ? 2u : 1u);
  double fastest = 0;
  for (const auto& p : roofline["products"]) fastest = std::max(fastest, p["gflops"].get<double>());
  EXPECT_GT(fastest, 0);
  EXPECT_EQ(roofline["gflops"].get<double>(), fastest);
  EXPECT_GT(bench["peak_resident_bytes"].get<double>(), 0);
}

TEST(Cli, TokenizeTextAndJsonlFile) {
  auto tokenizer = golden_path("tokenizers/gpt2").string();
  auto result = llmscope({"tokenize", "--tokenizer", tokenizer, "--text", "Hello world"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "[15496,995]\n");
  auto file = scratch_dir("jsonl") / "texts.jsonl";
  std::ofstream(file) << "{\"text\": \"Hello world\"}\n\"<|endoftext|>\"\n";
  result = llmscope({"tokenize", "--tokenizer", tokenizer, "--file", file.string(), "--special"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "[15496,995]\n[50256]\n");
  std::ofstream(file) << "{\"text\": \"ok\"}\n{broken\n";
  result = llmscope({"tokenize", "--tokenizer", tokenizer, "--file", file.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("texts.jsonl:2: not valid JSON"));
}

TEST(Cli, TokenizeReadsLlama3AndSentencePieceFolders) {
  // Llama 3's tokenizer.json frames with <|begin_of_text|>; SentencePiece's BOS comes from
  // tokenizer_config.json. One result line per input line either way.
  auto file = scratch_dir("modern") / "texts.jsonl";
  std::ofstream(file) << "\"Hello world\"\n\n{\"text\": \"Hi<|eot_id|>\"}\n";
  auto result =
      llmscope({"tokenize", "--tokenizer", golden_path("tokenizers/llama3-style").string(),
                "--file", file.string(), "--special"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "[50268,15496,995]\nnull\n[50268,17250,50277]\n");
  result = llmscope({"tokenize", "--tokenizer", golden_path("tokenizers/sentencepiece").string(),
                     "--text", "Hello world"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "[1,436,307,3927,889]\n");
  result = llmscope({"tokenize", "--tokenizer", scratch_dir("none").string(), "--text", "x"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("tokenizer.json, tokenizer.model, vocab.json + merges.txt"));
}

TEST(Cli, TrainTokenizerWritesFilesTokenizeReads) {
  const auto dir = scratch_dir("train_tokenizer");
  const auto text = dir / "corpus.txt";
  std::ofstream(text) << "the cat sat on the mat, the cat ate the rat.\n"
                      << "the end\n";
  const auto out = (dir / "tok").string();
  auto result =
      llmscope({"train-tokenizer", "--text", text.string(), "--vocab-size", "1000", "-o", out});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("vocab size 263 (6 merges"));  // stops early: pairs seen once
  EXPECT_THAT(result.output, HasSubstr("stopped early"));
  result =
      llmscope({"tokenize", "--tokenizer", out, "--text", " the cat<|endoftext|>", "--special"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto ids = nlohmann::json::parse(result.output).get<std::vector<int64_t>>();
  EXPECT_EQ(ids.size(), 3u);  // " the", " cat", <|endoftext|>
  EXPECT_EQ(ids.back(), 262);

  result = llmscope({"train-tokenizer", "--text", text.string(), "--vocab-size", "256", "-o", out});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("expected at least 257"));
  result = llmscope({"train-tokenizer", "--vocab-size", "300", "-o", out});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("'--text' is required"));
}

TEST(Cli, BadInputGivesOneClearMessageAndANonZeroExit) {
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const auto out = (scratch_dir("bad") / "out.safetensors").string();
  std::vector<Case> cases = {
      {{"capture", "-m", model_dir(), "--ids", "1,2", "--hook", "blocks.0.mlp.hook_pree", "-o",
        out},
       1,
       "did you mean 'blocks.0.mlp.hook_pre'"},
      {{"capture", "-m", model_dir(), "--ids", "1,5000", "--logits", "-o", out},
       1,
       "token id 5000 is out of range (vocab_size is 1000)"},
      {{"capture", "-m", model_dir(), "--ids", "1,x", "--logits", "-o", out},
       2,
       "'x' is not an integer"},
      {{"capture", "-m", model_dir(), "--ids", "1", "-o", out}, 2, "nothing to capture"},
      {{"capture", "-m", model_dir(), "--text", "hi", "--logits", "-o", out},
       1,
       "--text needs a tokenizer"},
      {{"capture", "-m", "/nonexistent", "--ids", "1", "--logits", "-o", out},
       1,
       "/nonexistent: not a folder"},
      {{"capture", "-m", model_dir(), "--input", model_dir() + "/config.json", "--logits", "-o",
        out},
       1,
       "config.json"},
      {{"generate", "-m", model_dir(), "--ids", "1", "--greedy", "--temperature", "0.5"},
       2,
       "--greedy cannot"},
      {{"info", "--model"}, 2, "the required argument for option '--model' is missing"},
      {{"bench", "-m", model_dir(), "--roofline=-1"}, 2, "--roofline must be >= 0"},
      {{"info", "-m", model_dir(), "--dtype", "int8"}, 1, "unknown dtype 'int8'"},
      {{"frobnicate"}, 2, "unknown command 'frobnicate'"},
  };
  for (const auto& c : cases) {
    auto result = llmscope(c.args);
    EXPECT_EQ(result.exit_code, c.exit_code) << c.args[0] << " " << c.message << "\n"
                                             << result.output;
    EXPECT_THAT(result.output, HasSubstr(c.message));
    EXPECT_THAT(result.output,
                ::testing::Not(HasSubstr("Exception raised from")));  // no torch backtraces
  }
  EXPECT_FALSE(std::filesystem::exists(out));  // failed runs leave no output behind
}

TEST(Cli, RunPassesArgumentsAndFailsWithFileAndLine) {
  auto dir = scratch_dir("run");
  auto script = dir / "midway.lua";
  std::ofstream(script) << "print('args', arg[1], select('#', ...), arg[0] ~= nil)\n"
                           "local m = model.load()\n"
                           "print('layers', m.n_layer)\n"
                           "m:forward(tensor.new({{1, 2, 5000}}))\n"
                           "print('not reached')\n";
  auto result = llmscope({"run", script.string(), "--model", model_dir(), "--", "first", "second"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("args\tfirst\t2\ttrue"));
  EXPECT_THAT(result.output, HasSubstr("layers\t3"));
  EXPECT_THAT(result.output, HasSubstr("midway.lua:4: forward: token id 5000 is out of range"));
  EXPECT_THAT(result.output, HasSubstr("stack traceback"));
  EXPECT_THAT(result.output, ::testing::Not(HasSubstr("not reached")));

  std::ofstream(script) << "print('ok')\n";
  result = llmscope({"run", script.string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  result = llmscope({"run", (dir / "missing.lua").string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("missing.lua: no such script"));
  std::ofstream(script) << "local x = = 1\n";
  result = llmscope({"run", script.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("midway.lua:1:"));
}

// Resource limits a user sets: a runaway script stops at --timeout (exit 124, the report says
// so), and an allocation past --max-memory is a Lua error naming the cap, not the OOM killer.
TEST(Cli, RunStopsARunawayScriptAtTimeout) {
  auto dir = scratch_dir("timeout");
  auto script = dir / "runaway.lua";
  std::ofstream(script) << "local n = 0\nwhile true do n = n + 1 end\n";
  const auto started = std::chrono::steady_clock::now();
  auto result =
      llmscope({"run", script.string(), "--timeout", "0.5", "--out", (dir / "report").string()});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(result.exit_code, 124) << result.output;
  EXPECT_THAT(result.output, HasSubstr("stopped by --timeout: the script ran for more than 0.5 s"));
  EXPECT_THAT(result.output, HasSubstr("runaway.lua:2"));
  EXPECT_LT(seconds, 60.0);  // bounded, not a timing assertion: the loop would never end
  std::ifstream report(dir / "report" / "report.html");  // the run's status, as failed
  std::string text((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("failed: "));
  EXPECT_THAT(text, HasSubstr("stopped by --timeout"));

  result = llmscope({"run", script.string(), "--timeout", "-1"});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("--timeout must be 0 (no limit) or more seconds"));
}

TEST(Cli, RunCapsTheMemoryOfCpuTensors) {
  auto dir = scratch_dir("max_memory");
  auto script = dir / "big.lua";
  std::ofstream(script) << "local small = tensor.zeros({1024, 1024})\n"  // 4 MiB: fits
                           "print('small', small:size(1))\n"
                           "local big = tensor.zeros({1024, 1024, 64})\n"  // 256 MiB: does not
                           "print('not reached')\n";
  auto result = llmscope({"run", script.string(), "--max-memory", "64M"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("small\t1024"));
  EXPECT_THAT(result.output, HasSubstr("big.lua:3: --max-memory: a tensor of 256.0 MiB"));
  EXPECT_THAT(result.output, HasSubstr("past the cap of 64.0 MiB"));
  EXPECT_THAT(result.output, ::testing::Not(HasSubstr("not reached")));

  result = llmscope({"run", script.string(), "--max-memory", "1G"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  for (const char* bad : {"12Q", "0", "-5M", "lots"}) {
    result = llmscope({"run", script.string(), "--max-memory", bad});
    EXPECT_EQ(result.exit_code, 2) << bad << ": " << result.output;
    EXPECT_THAT(result.output, HasSubstr("--max-memory: expected a size such as 512M, 8G")) << bad;
  }
}

// Lua's own values count too: a table that grows without end stops at the cap with Lua's
// memory error, explained, instead of taking the machine's memory.
TEST(Cli, RunCapsTheMemoryOfLuaValues) {
  auto dir = scratch_dir("max_memory_lua");
  auto script = dir / "table.lua";
  std::ofstream(script) << "local t = {}\nfor i = 1, 1e9 do t[i] = ('x'):rep(64) .. i end\n";
  auto result = llmscope({"run", script.string(), "--max-memory", "64M"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("not enough memory"));
  EXPECT_THAT(result.output,
              HasSubstr("--max-memory: the script's Lua values and CPU tensors reached the cap of "
                        "64.0 MiB"));
}

TEST(Cli, ReplEvaluatesExpressionsAndStatements) {
  auto dir = scratch_dir("repl");
  auto input = dir / "input.lua";
  std::ofstream(input)
      << "1 + 2\nx = m.n_layer\nfunction f(a)\n  return a * 2\nend\nf(x)\nerror('oops')\nx * 10\n";
  auto [exit_code, output] =
      run_command(shell_quote(LLMSCOPE_CLI) + " repl --model " + shell_quote(model_dir()) + " < " +
                  shell_quote(input.string()));
  EXPECT_EQ(exit_code, 0) << output;
  EXPECT_THAT(output, HasSubstr("> 3\n"));
  EXPECT_THAT(output, HasSubstr("6\n"));
  EXPECT_THAT(output, HasSubstr("oops"));
  EXPECT_THAT(output, HasSubstr("> 30\n"));  // after the error the session goes on
}

TEST(Cli, FillMaskOnBertAndItsErrors) {
  const auto bert = golden_path("bert-tiny").string();
  auto result = llmscope({"fill-mask", "--model", bert, "--ids", "2,50,103,60,3", "--mask-id",
                          "103", "-k", "3", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto predictions = nlohmann::json::parse(result.output);
  ASSERT_EQ(predictions.size(), 1u);
  EXPECT_EQ(predictions[0]["position"], 2);
  EXPECT_EQ(predictions[0]["predictions"].size(), 3u);
  EXPECT_GE(predictions[0]["predictions"][0]["probability"].get<double>(),
            predictions[0]["predictions"][1]["probability"].get<double>());
  result = llmscope({"fill-mask", "--model", model_dir(), "--ids", "1,2", "--mask-id", "2"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("gpt2 is a causal language model"));
  result = llmscope({"generate", "--model", bert, "--ids", "2,50"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("bert is a masked language model"));
  auto out = scratch_dir("bert") / "out.safetensors";
  result = llmscope({"capture", "--model", bert, "--ids", "2,50,3", "--hook",
                     "blocks.1.mlp.hook_pre", "--logits", "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(SafetensorsFile::open(out).entry("hook.blocks.1.mlp.hook_pre").shape,
            (std::vector<int64_t>{1, 3, 128}));
}

TEST(Cli, HelpForEveryCommand) {
  for (const char* command : {"info", "tokenize", "train-tokenizer", "capture", "generate",
                              "fill-mask", "run", "repl", "bench", "plugins", "pull"}) {
    auto result = llmscope({command, "--help"});
    EXPECT_EQ(result.exit_code, 0) << command;
    EXPECT_THAT(result.output, HasSubstr(std::string("usage: llmscope ") + command));
  }
  auto result = llmscope({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("capture"));
}

}  // namespace
}  // namespace llmscope::testing
