// The plugin host: good plugins load and run; each broken plugin is refused with its exact
// reason while the host keeps running; libraries stay mapped exactly as long as anything made
// from them exists.
#include <gmock/gmock.h>

#include <csignal>
#include <fstream>

#include "golden.hpp"
#include "llmscope/plugin_host.hpp"

namespace llmscope::plugin {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kDir = LLMSCOPE_TEST_PLUGIN_DIR;

fs::path file_of(const std::string& name) { return kDir / ("libllmscope_plugin_" + name + ".so"); }

std::string refusal(const std::string& name) {
  PluginHost host({kDir});
  try {
    host.load_file(file_of(name));
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

bool mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("libllmscope_plugin_" + name + ".so") != std::string::npos) return true;
  }
  return false;
}

TEST(PluginHost, LoadsAGoodPluginAndCallsItsFunctions) {
  PluginHost host({kDir});
  auto plugin = host.load("testing");
  EXPECT_EQ(plugin->info().name, "testing");
  EXPECT_EQ(plugin->info().version, "2.1.0");
  EXPECT_EQ(plugin->info().abi_major, kAbiMajor);
  const auto* add = plugin->module().find("add");
  ASSERT_NE(add, nullptr);
  auto sum = plugin->call(*add, {Value(2), Value(0.5)});
  EXPECT_EQ(std::get<double>(sum.data), 2.5);
  EXPECT_EQ(host.load("testing"), plugin);  // loaded once
}

TEST(PluginHost, ArgumentsAreCheckedByTheFunctionsTypes) {
  PluginHost host({kDir});
  auto plugin = host.load("testing");
  try {
    plugin->call(*plugin->module().find("add"), {Value(1), Value(std::string("two"))});
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.index, 2);
    EXPECT_STREQ(e.what(), "number expected, got string");
  }
  auto none = plugin->call(*plugin->module().find("optional"), {});
  EXPECT_EQ(std::get<std::string>(none.data), "nothing");
  EXPECT_THROW(plugin->call(*plugin->module().find("options"), {Value(Table{{"scal", Value(2)}})}),
               ArgumentError);
}

TEST(PluginHost, ExceptionsFromPluginFunctionsNameThePluginAndFunction) {
  PluginHost host({kDir});
  auto plugin = host.load("testing");
  try {
    plugin->call(*plugin->module().find("boom"), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "plugin 'testing' function 'boom': something broke inside");
  }
  try {
    plugin->call(*plugin->module().find("torch_boom"), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("plugin 'testing' function 'torch_boom': shape '[3]' is invalid"));
    EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("Exception raised from")));
  }
}

TEST(PluginHost, RefusesEachBrokenPluginWithItsReason) {
  const std::string host_abi =
      std::to_string(plugin::kAbiMajor) + "." + std::to_string(plugin::kAbiMinor);
  EXPECT_THAT(refusal("abi_major"), HasSubstr("plugin ABI 99." + std::to_string(plugin::kAbiMinor) +
                                              " is incompatible with this host's ABI " + host_abi));
  EXPECT_THAT(refusal("newer_minor"), HasSubstr("plugin needs ABI 2.7 but this host provides " +
                                                host_abi + " (update llmscope)"));
  EXPECT_THAT(refusal("old_torch"), HasSubstr("built against libtorch 0.13, this host uses 1.13"));
  EXPECT_THAT(refusal("other_cxx_abi"), HasSubstr("_GLIBCXX_USE_CXX11_ABI=2"));
  EXPECT_THAT(refusal("no_factory"), HasSubstr("missing entry symbol llmscope_plugin_factory"));
  EXPECT_THAT(refusal("throwing_init"),
              HasSubstr("plugin 'throwing_init' failed to initialise: cannot find my data file"));
  EXPECT_THAT(refusal("not_a_plugin"),
              HasSubstr("not an llmscope plugin (no llmscope_plugin_descriptor symbol"));
  EXPECT_THAT(refusal("garbage"), HasSubstr("cannot load as a shared library"));
  for (const char* name : {"abi_major", "no_factory", "garbage"}) {
    EXPECT_THAT(refusal(name), HasSubstr(file_of(name).string()));
  }
  PluginHost host({kDir});
  EXPECT_THAT([&] { host.load("misnamed"); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("declares itself as plugin 'someone_else', expected 'misnamed'")));
  // The host is still fine afterwards.
  EXPECT_EQ(host.load("testing")->info().name, "testing");
}

TEST(PluginHost, MissingPluginListsWhatIsAvailable) {
  PluginHost host({kDir});
  try {
    host.load("no_such_analysis");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("plugin 'no_such_analysis' not found"));
    EXPECT_THAT(e.what(), HasSubstr("testing"));
    EXPECT_THAT(e.what(), HasSubstr("--plugin-path"));
  }
}

TEST(PluginHost, DiscoverListsGoodAndRefusedPlugins) {
  PluginHost host({kDir});
  auto listings = host.discover();
  std::map<std::string, std::string> seen;  // file name -> "ok" or problem
  for (const auto& l : listings) seen[l.path.filename().string()] = l.plugin ? "ok" : l.problem;
  EXPECT_EQ(seen["libllmscope_plugin_testing.so"], "ok");
  EXPECT_EQ(seen["libllmscope_plugin_hello.so"], "ok");  // in-tree, from the build tree's folder
  EXPECT_EQ(seen["libllmscope_plugin_replace.so"], "ok");
  EXPECT_THAT(seen["libllmscope_plugin_abi_major.so"], HasSubstr("incompatible"));
  EXPECT_THAT(seen["libllmscope_plugin_garbage.so"], HasSubstr("cannot load"));
}

TEST(PluginHost, UnloadingKeepsLibrariesUntilTheLastUserIsGone) {
  PluginHost host({kDir});
  auto plugin = host.load("testing");
  ASSERT_TRUE(mapped("testing"));
  host.unload("testing");
  EXPECT_FALSE(host.is_loaded("testing"));
  // A reference taken before the unload still calls safely.
  EXPECT_EQ(
      std::get<double>(plugin->call(*plugin->module().find("add"), {Value(1), Value(1)}).data),
      2.0);
  plugin.reset();
  EXPECT_FALSE(mapped("testing"));
  // And it loads again.
  auto again = host.load("testing");
  EXPECT_TRUE(mapped("testing"));
  EXPECT_EQ(again->info().name, "testing");
}

TEST(PluginHost, NativeHooksKeepTheirPluginLoaded) {
  auto model = std::shared_ptr<Model>(load_model(testing::golden_path("gpt2-tiny")));
  {
    PluginHost host({kDir});
    auto plugin = host.load("testing");
    plugin->call(*plugin->module().find("install_hook"),
                 {Value(model), Value(std::string("blocks.*.mlp.hook_post"))});
  }  // host and plugin reference gone; the hook in the model still needs the library
  EXPECT_TRUE(mapped("testing"));
  at::NoGradGuard no_grad;
  model->forward({at::tensor({1, 2, 3}, at::kLong).unsqueeze(0)});
  {
    PluginHost host({kDir});
    auto plugin = host.load("testing");
    EXPECT_EQ(std::get<int64_t>(plugin->call(*plugin->module().find("hook_calls"), {}).data), 3);
  }
  model->clear_hooks();
  EXPECT_FALSE(mapped("testing"));
}

TEST(PluginHost, CliListsPluginsAndRefusals) {
  auto [exit_code, output] =
      testing::run_command(testing::shell_quote(LLMSCOPE_CLI) + " plugins --plugin-path " +
                           testing::shell_quote(kDir.string()));
  EXPECT_EQ(exit_code, 0) << output;
  EXPECT_THAT(output, HasSubstr("testing 2.1.0  ABI " + std::to_string(plugin::kAbiMajor) + "." +
                                std::to_string(plugin::kAbiMinor)));
  EXPECT_THAT(output, HasSubstr("    add(a, b) -> number"));
  EXPECT_THAT(output, HasSubstr("hello 1.0.0"));
  EXPECT_THAT(output, HasSubstr("refused: "));
}

// A plugin that crashes the process inside a lesson: the report written so far stays, whole and
// marked incomplete (the Lua host rewrites report.html after every section).
TEST(PluginHost, ACrashInsideALessonLeavesTheReportOfWhatCompleted) {
  const auto dir = testing::scratch_dir("plugin_crash");
  fs::create_directories(dir / "lessons");
  std::ofstream(dir / "lessons" / "99-01_crash.lua")
      << "-- lesson: 99-01 A lesson whose plugin crashes\n"
         "report.text('The first part completed.')\n"
         "report.table('numbers', { columns = { 'n' }, rows = { { 1 }, { 2 } } })\n"
         "plugin('testing').crash()\n"
         "report.text('never written')\n";
  auto [exit_code, output] =
      testing::run_command(testing::shell_quote(LLMSCOPE_CLI) + " lesson run 99-01 --lessons " +
                           testing::shell_quote((dir / "lessons").string()) + " --plugin-path " +
                           testing::shell_quote(kDir.string()) + " --out " +
                           testing::shell_quote((dir / "out").string()));
  // 139 from the shell (or -1 from popen) for the SIGSEGV; under AddressSanitizer, which reports
  // the signal and exits, 1. A Lua error would mark the report failed, not incomplete.
  EXPECT_NE(exit_code, 0) << output;
  const std::string report = testing::read_text_file(dir / "out" / "report.html");
  EXPECT_THAT(report, HasSubstr("The first part completed."));
  EXPECT_THAT(report, HasSubstr("Incomplete:"));
  EXPECT_THAT(report, ::testing::Not(HasSubstr("never written")));
  EXPECT_TRUE(fs::exists(dir / "out" / "data" / "numbers.csv"));
}

}  // namespace
}  // namespace llmscope::plugin
