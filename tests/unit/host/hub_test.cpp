// Hugging Face hub: model names, the cache layout huggingface_hub writes, `pull` against a fake
// hub on 127.0.0.1 (tests/hub/fake_hub.py: resumes, corrupt files, HTTP errors), and sharded
// checkpoints. No test touches the network beyond 127.0.0.1.
#include <gmock/gmock.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/hub_pull.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"
#include "llmscope/sha256.hpp"

extern char** environ;

namespace llmscope::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kMain = "6c0e6080953db56375760c0471a8c5f2929baf11";
constexpr const char* kV1 = "11c5a3d5811f50298f278a704980280950aedb10";

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

at::Tensor logits_of(const fs::path& dir_or_name) {
  auto model = load_model(dir_or_name);
  return model
      ->forward(
          ForwardInput{at::tensor(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, at::kLong).unsqueeze(0)})
      .logits;
}

const at::Tensor& reference_logits() {
  static const at::Tensor logits = logits_of(golden_path("gpt2-tiny"));
  return logits;
}

// The files of the fake "gpt2" repo: what llmscope needs, plus files it must not download.
nlohmann::json gpt2_repo_files() {
  return {{"config.json", golden_path("gpt2-tiny/config.json").string()},
          {"model.safetensors", golden_path("gpt2-tiny/model.safetensors").string()},
          {"vocab.json", golden_path("tokenizers/gpt2/vocab.json").string()},
          {"merges.txt", golden_path("tokenizers/gpt2/merges.txt").string()},
          {"meta.json", golden_path("gpt2-tiny/meta.json").string()},
          {"expected.safetensors", golden_path("gpt2-tiny/expected.safetensors").string()}};
}

nlohmann::json gpt2_repo() {
  return {{"revisions", {{"main", kMain}}}, {"commits", {{kMain, gpt2_repo_files()}}}};
}

bool python_available() {
  static const bool available = std::system("python3 -c pass >/dev/null 2>&1") == 0;
  return available;
}

// tests/hub/fake_hub.py on a free port of 127.0.0.1, stopped when this goes out of scope.
class FakeHub {
 public:
  FakeHub(const fs::path& dir, const nlohmann::json& config) : dir_(dir) {
    std::ofstream(dir / "config.json") << config.dump();
    const std::string script = (golden_dir().parent_path() / "hub" / "fake_hub.py").string();
    const std::string config_path = (dir / "config.json").string(),
                      port_path = (dir / "port").string(),
                      log_path = (dir / "requests.jsonl").string();
    std::vector<std::string> args = {"python3", script,  "--config", config_path,  "--port-file",
                                     port_path, "--log", log_path,   "--lifetime", "120"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "python3", nullptr, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
      return;
    }
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!fs::exists(dir / "port") && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (fs::exists(dir / "port")) port_ = std::stoi(read_text(dir / "port"));
  }
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;
  ~FakeHub() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // up to 5 s
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  bool running() const { return port_ > 0; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Every request so far: {"method", "path", "range", "authorization"}.
  std::vector<nlohmann::json> requests() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(dir_ / "requests.jsonl");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    }
    return out;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A developer's Hugging Face settings never leak in, and 127.0.0.1 never goes via a proxy.
    for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME",
                             "HF_ENDPOINT", "HF_TOKEN", "http_proxy", "HTTP_PROXY", "https_proxy",
                             "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
      env_.push_back(std::make_unique<ScopedEnv>(name, std::nullopt));
    }
    env_.push_back(std::make_unique<ScopedEnv>("no_proxy", "127.0.0.1,localhost"));
    env_.push_back(std::make_unique<ScopedEnv>("NO_PROXY", "127.0.0.1,localhost"));
    cache_ = scratch_dir("cache");
  }

  void set_env(const std::string& name, const std::string& value) {
    env_.push_back(std::make_unique<ScopedEnv>(name, value));
  }

  // Starts the fake hub; skips the test where there is no python3.
  std::unique_ptr<FakeHub> start_hub(const nlohmann::json& config) {
    if (!python_available()) return nullptr;
    auto hub = std::make_unique<FakeHub>(scratch_dir("hub"), config);
    EXPECT_TRUE(hub->running()) << "tests/hub/fake_hub.py did not start";
    return hub->running() ? std::move(hub) : nullptr;
  }

  hub::PullOptions options(const FakeHub& server) const {
    hub::PullOptions o;
    o.endpoint = server.endpoint();
    o.cache = cache_;
    o.progress = false;
    o.connect_timeout_s = 5;
    o.stall_timeout_s = 10;
    return o;
  }

  fs::path repo() const { return hub::repo_dir(cache_, "gpt2"); }
  static std::string model_sha() {
    static const std::string sha = sha256_file(golden_path("gpt2-tiny/model.safetensors"));
    return sha;
  }

  fs::path cache_;
  std::vector<std::unique_ptr<ScopedEnv>> env_;
};

#define START_HUB(var, config)                                          \
  auto var = start_hub(config);                                         \
  if (!python_available()) GTEST_SKIP() << "python3 runs the fake hub"; \
  ASSERT_TRUE(var)

// ---- names and the cache layout ------------------------------------------------------------

TEST_F(HubTest, ParsesModelNames) {
  auto ref = hub::parse_model_ref("gpt2");
  EXPECT_EQ(ref.repo, "gpt2");
  EXPECT_EQ(ref.revision, "main");
  ref = hub::parse_model_ref("EleutherAI/gpt-neo-125m@v1.0");
  EXPECT_EQ(ref.repo, "EleutherAI/gpt-neo-125m");
  EXPECT_EQ(ref.revision, "v1.0");
  EXPECT_EQ(hub::parse_model_ref("bert-base-uncased@refs/pr/1").revision, "refs/pr/1");
  EXPECT_EQ(hub::parse_model_ref(std::string("gpt2@") + kMain).revision, kMain);

  for (const char* path :
       {"/abs/model", "./gpt2", "../gpt2", "~/gpt2", "a/b/c", "", "gpt2@", "@main", "a--b", "-gpt2",
        "gpt2.", "org/", "gpt2@../../x", "gpt2@a b", "gpt2@/main"}) {
    EXPECT_FALSE(hub::is_model_ref(path)) << path;
  }
  EXPECT_THAT(
      error_of([] { hub::parse_model_ref("a/b/c"); }),
      HasSubstr("'a/b/c' is not a model name (expected NAME or ORG/NAME, optionally @REVISION"));
}

TEST_F(HubTest, CacheFolderFollowsTheEnvironment) {
  set_env("HOME", "/home/someone");
  EXPECT_EQ(hub::cache_dir(), fs::path("/home/someone/.cache/huggingface/hub"));
  set_env("XDG_CACHE_HOME", "/xdg");
  EXPECT_EQ(hub::cache_dir(), fs::path("/xdg/huggingface/hub"));
  set_env("HF_HOME", "~/hf");
  EXPECT_EQ(hub::cache_dir(), fs::path("/home/someone/hf/hub"));
  set_env("HUGGINGFACE_HUB_CACHE", "/legacy");
  EXPECT_EQ(hub::cache_dir(), fs::path("/legacy"));
  set_env("HF_HUB_CACHE", "/hub-cache");
  EXPECT_EQ(hub::cache_dir(), fs::path("/hub-cache"));

  EXPECT_EQ(hub::repo_dir("/c", "gpt2"), fs::path("/c/models--gpt2"));
  EXPECT_EQ(hub::repo_dir("/c", "EleutherAI/gpt-neo-125m"),
            fs::path("/c/models--EleutherAI--gpt-neo-125m"));
}

// Lays out `files` as huggingface_hub does: blobs by content hash, relative symlinks, a ref.
void write_cached_model(const fs::path& cache, const std::string& repo, const std::string& revision,
                        const std::string& commit, const std::vector<std::string>& files,
                        const fs::path& source = golden_path("gpt2-tiny")) {
  const fs::path dir = hub::repo_dir(cache, repo);
  fs::create_directories(dir / "blobs");
  fs::create_directories(dir / "snapshots" / commit);
  for (const auto& file : files) {
    const auto blob = sha256_file(source / file);
    fs::copy_file(source / file, dir / "blobs" / blob, fs::copy_options::overwrite_existing);
    fs::create_symlink(fs::path("../../blobs") / blob, dir / "snapshots" / commit / file);
  }
  fs::create_directories((dir / "refs" / revision).parent_path());
  std::ofstream(dir / "refs" / revision) << commit;  // no newline, as huggingface_hub writes it
}

TEST_F(HubTest, LoadsANameFromTheCacheHfHomePoints) {
  const fs::path home = scratch_dir("hf-home");
  write_cached_model(home / "hub", "gpt2", "main", kMain, {"config.json", "model.safetensors"});
  set_env("HF_HOME", home.string());
  auto model = load_model("gpt2");
  EXPECT_EQ(model->source(), home / "hub" / "models--gpt2" / "snapshots" / kMain);
  EXPECT_TRUE(at::equal(logits_of("gpt2"), reference_logits()));
  EXPECT_TRUE(at::equal(logits_of(std::string("gpt2@") + kMain),
                        reference_logits()));  // a commit needs no ref
}

TEST_F(HubTest, LoadsANameFromTheCacheHfHubCachePoints) {
  write_cached_model(cache_, "tiny-org/gpt2-tiny", "v1.0", kV1,
                     {"config.json", "model.safetensors"});
  set_env("HF_HOME", scratch_dir("elsewhere").string());  // HF_HUB_CACHE wins over HF_HOME
  set_env("HF_HUB_CACHE", cache_.string());
  EXPECT_TRUE(at::equal(logits_of("tiny-org/gpt2-tiny@v1.0"), reference_logits()));
}

TEST_F(HubTest, UnknownNameSuggestsPullAndListsTheCache) {
  write_cached_model(cache_, "gpt2", "main", kMain, {"config.json", "model.safetensors"});
  write_cached_model(cache_, "EleutherAI/gpt-neo-125m", "main", kV1,
                     {"config.json", "model.safetensors"});
  set_env("HF_HUB_CACHE", cache_.string());
  EXPECT_EQ(hub::cached_models(cache_),
            (std::vector<std::string>{"EleutherAI/gpt-neo-125m", "gpt2"}));
  const auto message = error_of([] { load_model("gpt2-large"); });
  EXPECT_THAT(
      message,
      HasSubstr("'gpt2-large' is neither a model folder nor a model in the Hugging Face cache (" +
                cache_.string() + ")"));
  EXPECT_THAT(message, HasSubstr("download it with `llmscope pull gpt2-large`"));
  EXPECT_THAT(message, HasSubstr("cached: EleutherAI/gpt-neo-125m, gpt2"));

  const auto revision = error_of([] { load_model("gpt2@v2"); });
  EXPECT_THAT(revision, HasSubstr("gpt2@v2: revision 'v2' is not in the Hugging Face cache"));
  EXPECT_THAT(revision, HasSubstr("cached revisions: main"));
  EXPECT_THAT(revision, HasSubstr("`llmscope pull gpt2@v2`"));

  // Paths stay paths: the folder errors are unchanged.
  EXPECT_THAT(error_of([] { load_model("/nonexistent/model"); }),
              HasSubstr("/nonexistent/model: not a folder"));
}

TEST_F(HubTest, IncompleteSnapshotSuggestsPull) {
  write_cached_model(cache_, "gpt2", "main", kMain, {"config.json"});
  set_env("HF_HUB_CACHE", cache_.string());
  const auto message = error_of([] { load_model("gpt2"); });
  EXPECT_THAT(message, HasSubstr("has no safetensors weights"));
  EXPECT_THAT(message, HasSubstr("`llmscope pull gpt2`"));
}

TEST_F(HubTest, ChoosesTheFilesLlmscopeReads) {
  const hub::ModelRef ref{"gpt2", "main"};
  EXPECT_EQ(hub::files_to_pull(
                ref, {"config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5",
                      "merges.txt", "vocab.json", "tokenizer.json", "onnx/model.onnx",
                      "model.safetensors.index.json", "64-8bits.tflite"}),
            (std::vector<std::string>{"config.json", "tokenizer.json", "vocab.json", "merges.txt",
                                      "model.safetensors"}));
  EXPECT_EQ(hub::files_to_pull(ref, {"config.json", "model.safetensors.index.json",
                                     "model-00001-of-00002.safetensors", "vocab.txt"}),
            (std::vector<std::string>{"config.json", "vocab.txt", "model.safetensors.index.json"}));
  // Llama 2 and Mistral: SentencePiece's tokenizer.model beside its tokenizer.json conversion.
  EXPECT_EQ(hub::files_to_pull(ref, {"config.json", "model.safetensors", "tokenizer.model",
                                     "tokenizer.json", "tokenizer_config.json"}),
            (std::vector<std::string>{"config.json", "tokenizer.json", "tokenizer_config.json",
                                      "tokenizer.model", "model.safetensors"}));
  EXPECT_THAT(error_of([&] {
                hub::files_to_pull(ref, {"config.json", "pytorch_model.bin"});
              }),
              HasSubstr("gpt2@main has no safetensors weights (model.safetensors or "
                        "model.safetensors.index.json), "
                        "only pytorch_model.bin"));
  EXPECT_THAT(error_of([&] { hub::files_to_pull(ref, {"model.safetensors"}); }),
              HasSubstr("has no config.json"));
}

// ---- pull against the fake hub -------------------------------------------------------------

std::vector<nlohmann::json> with_method(const std::vector<nlohmann::json>& requests,
                                        const std::string& method) {
  std::vector<nlohmann::json> out;
  for (const auto& r : requests) {
    if (r["method"] == method) out.push_back(r);
  }
  return out;
}

TEST_F(HubTest, PullThenLoadByNameMatchesTheFolder) {
  START_HUB(server, (nlohmann::json{{"repos", {{"gpt2", gpt2_repo()}}}}));
  const auto result = hub::pull(hub::parse_model_ref("gpt2"), options(*server));
  EXPECT_EQ(result.commit, kMain);
  EXPECT_EQ(result.snapshot, repo() / "snapshots" / kMain);
  std::vector<std::string> names;
  for (const auto& f : result.files) {
    names.push_back(f.name);
    EXPECT_TRUE(f.downloaded) << f.name;
    EXPECT_EQ(f.size, fs::file_size(result.snapshot / f.name)) << f.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"config.json", "vocab.json", "merges.txt",
                                             "model.safetensors"}));

  // The layout huggingface_hub writes: refs/main, relative symlinks into blobs/, LFS blobs by
  // sha256.
  EXPECT_EQ(read_text(repo() / "refs" / "main"), kMain);
  EXPECT_TRUE(fs::is_symlink(result.snapshot / "model.safetensors"));
  EXPECT_EQ(fs::read_symlink(result.snapshot / "model.safetensors"),
            fs::path("../../blobs") / model_sha());
  EXPECT_TRUE(fs::is_symlink(result.snapshot / "config.json"));
  EXPECT_EQ(fs::read_symlink(result.snapshot / "config.json").parent_path(),
            fs::path("../../blobs"));
  EXPECT_FALSE(fs::exists(result.snapshot / "meta.json"));
  EXPECT_FALSE(fs::exists(result.snapshot / "expected.safetensors"));
  for (const auto& entry : fs::directory_iterator(repo() / "blobs")) {
    EXPECT_EQ(entry.path().extension(), "") << "left behind: " << entry.path();
  }

  set_env("HF_HUB_CACHE", cache_.string());
  auto model = load_model("gpt2");
  EXPECT_EQ(model->source(), result.snapshot);
  EXPECT_NE(model->tokenizer(), nullptr);
  EXPECT_TRUE(at::equal(logits_of("gpt2"), reference_logits()));
}

TEST_F(HubTest, SecondPullDownloadsNothing) {
  START_HUB(server, (nlohmann::json{{"repos", {{"gpt2", gpt2_repo()}}}}));
  hub::pull(hub::parse_model_ref("gpt2"), options(*server));
  const size_t before = server->requests().size();
  const auto again = hub::pull(hub::parse_model_ref("gpt2"), options(*server));
  EXPECT_EQ(again.bytes_downloaded, 0u);
  for (const auto& f : again.files) EXPECT_FALSE(f.downloaded) << f.name;
  const auto requests = server->requests();
  ASSERT_EQ(requests.size(), before + 1) << "only the revision lookup";
  EXPECT_EQ(requests.back()["path"], "/api/models/gpt2/revision/main");
}

TEST_F(HubTest, InterruptedDownloadResumesWithARangeRequest) {
  START_HUB(server,
            (nlohmann::json{{"repos", {{"gpt2", gpt2_repo()}}}, {"cut", {"model.safetensors"}}}));
  const auto result = hub::pull(hub::parse_model_ref("gpt2"), options(*server));
  const auto size = fs::file_size(golden_path("gpt2-tiny/model.safetensors"));
  std::vector<std::string> ranges;
  for (const auto& r : with_method(server->requests(), "GET")) {
    if (r["path"] == "/cdn/" + model_sha() && r["range"].is_string()) ranges.push_back(r["range"]);
  }
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0], "bytes=" + std::to_string(size / 2) + "-");
  EXPECT_EQ(sha256_file(result.snapshot / "model.safetensors"), model_sha());
  set_env("HF_HUB_CACHE", cache_.string());
  EXPECT_TRUE(at::equal(logits_of("gpt2"), reference_logits()));
}

TEST_F(HubTest, PartialFileFromAnEarlierRunIsResumed) {
  START_HUB(server, (nlohmann::json{{"repos", {{"gpt2", gpt2_repo()}}}}));
  // What a killed pull leaves: the first 1000 bytes in blobs/<sha256>.incomplete.
  fs::create_directories(repo() / "blobs");
  {
    std::ifstream in(golden_path("gpt2-tiny/model.safetensors"), std::ios::binary);
    std::string head(1000, '\0');
    in.read(head.data(), 1000);
    std::ofstream(repo() / "blobs" / (model_sha() + ".incomplete"), std::ios::binary) << head;
  }
  const auto result = hub::pull(hub::parse_model_ref("gpt2"), options(*server));
  bool resumed = false;
  for (const auto& r : with_method(server->requests(), "GET")) {
    resumed = resumed || (r["path"] == "/cdn/" + model_sha() && r["range"] == "bytes=1000-");
  }
  EXPECT_TRUE(resumed);
  EXPECT_EQ(sha256_file(result.snapshot / "model.safetensors"), model_sha());
  EXPECT_FALSE(fs::exists(repo() / "blobs" / (model_sha() + ".incomplete")));
}

TEST_F(HubTest, CorruptDownloadIsRejectedAndDeleted) {
  START_HUB(server, (nlohmann::json{{"repos", {{"gpt2", gpt2_repo()}}},
                                    {"corrupt", {"model.safetensors"}}}));
  const auto message = error_of([&] { hub::pull(hub::parse_model_ref("gpt2"), options(*server)); });
  EXPECT_THAT(message,
              HasSubstr("model.safetensors from " + server->endpoint() + "/gpt2/resolve/" + kMain +
                        "/model.safetensors: SHA-256 mismatch (expected " + model_sha()));
  EXPECT_THAT(message, HasSubstr("the download is corrupt and was deleted"));
  EXPECT_FALSE(fs::exists(repo() / "blobs" / model_sha()));
  EXPECT_FALSE(fs::exists(repo() / "blobs" / (model_sha() + ".incomplete")));
  EXPECT_FALSE(fs::exists(repo() / "snapshots" / kMain / "model.safetensors"));
  EXPECT_FALSE(fs::exists(repo() / "refs" / "main")) << "a ref only once the snapshot is whole";
}

TEST_F(HubTest, RevisionsResolveThroughRefs) {
  auto repo_config = gpt2_repo();
  repo_config["revisions"]["v1.0"] = kV1;
  repo_config["commits"][kV1] = gpt2_repo_files();
  START_HUB(server, (nlohmann::json{{"repos", {{"gpt2", repo_config}}}}));
  set_env("HF_HUB_CACHE", cache_.string());

  auto v1 = hub::pull(hub::parse_model_ref("gpt2@v1.0"), options(*server));
  EXPECT_EQ(v1.commit, kV1);
  EXPECT_EQ(read_text(repo() / "refs" / "v1.0"), kV1);
  EXPECT_EQ(load_model("gpt2@v1.0")->source(), repo() / "snapshots" / kV1);
  EXPECT_THAT(error_of([] { load_model("gpt2"); }),
              HasSubstr("revision 'main' is not in the Hugging Face cache"));

  // main shares every blob with v1.0: new snapshot links, no downloads.
  const size_t before = server->requests().size();
  auto on_main = hub::pull(hub::parse_model_ref("gpt2"), options(*server));
  EXPECT_EQ(on_main.bytes_downloaded, 0u);
  const auto requests = server->requests();
  for (size_t i = before; i < requests.size(); ++i) {
    const auto path = requests[i]["path"].get<std::string>();
    if (requests[i]["method"] == "GET")
      EXPECT_EQ(path, "/api/models/gpt2/revision/main") << "downloaded " << path;
  }
  EXPECT_EQ(load_model("gpt2")->source(), repo() / "snapshots" / kMain);

  // A commit hash needs no ref.
  hub::pull(hub::parse_model_ref(std::string("gpt2@") + kMain), options(*server));
  EXPECT_FALSE(fs::exists(repo() / "refs" / kMain));
}

TEST_F(HubTest, HttpErrorsSayWhatToDo) {
  START_HUB(server, (nlohmann::json{{"repos", {{"gpt2", gpt2_repo()}}},
                                    {"status", {{"meta/gated", 403}}}}));
  auto o = options(*server);
  const auto unknown = error_of([&] { hub::pull(hub::parse_model_ref("nobody/nothing"), o); });
  EXPECT_THAT(
      unknown,
      HasSubstr("nobody/nothing: access denied (HTTP 401 from " + o.endpoint +
                "/api/models/nobody/nothing/revision/main): the model does not exist, or it is "
                "private or gated; if you have access, set HF_TOKEN"));
  EXPECT_THAT(error_of([&] { hub::pull(hub::parse_model_ref("meta/gated"), o); }),
              HasSubstr("meta/gated: meta/gated is gated (HTTP 403"));
  EXPECT_THAT(error_of([&] { hub::pull(hub::parse_model_ref("gpt2@nope"), o); }),
              HasSubstr("gpt2@nope: no revision 'nope' in gpt2 (HTTP 404"));
  o.token = "hf_secret";
  EXPECT_THAT(error_of([&] { hub::pull(hub::parse_model_ref("nobody/nothing"), o); }),
              HasSubstr("HF_TOKEN was sent: check that its account has access"));
}

TEST_F(HubTest, EndpointAndTokenComeFromTheEnvironment) {
  START_HUB(server, (nlohmann::json{{"repos", {{"gpt2", gpt2_repo()}}}}));
  set_env("HF_ENDPOINT", server->endpoint() + "/");
  set_env("HF_TOKEN", "hf_test_token");
  set_env("HF_HUB_CACHE", cache_.string());
  hub::PullOptions o;
  o.progress = false;
  const auto result = hub::pull(hub::parse_model_ref("gpt2"), o);
  EXPECT_EQ(result.snapshot, repo() / "snapshots" / kMain);
  const auto requests = server->requests();
  ASSERT_FALSE(requests.empty());
  for (const auto& r : requests) EXPECT_EQ(r["authorization"], "Bearer hf_test_token") << r["path"];
}

TEST_F(HubTest, UnreachableEndpointSaysSo) {
  // A bound socket that does not listen: connections to it are refused.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  hub::PullOptions o;
  o.endpoint = endpoint;
  o.cache = cache_;
  o.progress = false;
  o.connect_timeout_s = 5;
  const auto message = error_of([&] { hub::pull(hub::parse_model_ref("gpt2"), o); });
  ::close(fd);
  EXPECT_THAT(message, HasSubstr("cannot reach " + endpoint + ": "));
  EXPECT_THAT(message, HasSubstr("(offline? set HF_ENDPOINT for a mirror)"));
  EXPECT_THAT(message, Not(HasSubstr("the cache already has")));
}

// ---- sharded checkpoints ----------------------------------------------------------------

// gpt2-tiny's tensors split across two shards with an index, as save_pretrained writes them.
fs::path write_sharded(const fs::path& dir) {
  auto file = SafetensorsFile::open(golden_path("gpt2-tiny/model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> first, second;
  nlohmann::json weight_map = nlohmann::json::object();
  const auto& entries = file.entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    const bool in_first = i < entries.size() / 2;
    (in_first ? first : second).emplace_back(entries[i].name, file.tensor(entries[i].name));
    weight_map[entries[i].name] =
        in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  save_safetensors(dir / "model-00001-of-00002.safetensors", first, {{"format", "pt"}});
  save_safetensors(dir / "model-00002-of-00002.safetensors", second, {{"format", "pt"}});
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{
      {"metadata", {{"total_size", fs::file_size(golden_path("gpt2-tiny/model.safetensors"))}}},
      {"weight_map", weight_map}}.dump(2);
  fs::copy_file(golden_path("gpt2-tiny/config.json"), dir / "config.json");
  return dir;
}

TEST(ShardedCheckpointTest, LoadsLikeTheSingleFile) {
  const auto dir = write_sharded(scratch_dir("sharded"));
  EXPECT_TRUE(at::equal(logits_of(dir), reference_logits()));
  auto set = SafetensorsSet::open_index(dir / "model.safetensors.index.json");
  EXPECT_EQ(set.files().size(), 2u);
  EXPECT_EQ(set.entries().size(),
            SafetensorsFile::open(golden_path("gpt2-tiny/model.safetensors")).entries().size());
  EXPECT_EQ(set.file_of("transformer.wte.weight").path().parent_path(), dir);
  EXPECT_THAT(
      error_of([&] { set.entry("transformer.wte.weight_"); }),
      HasSubstr(
          "model.safetensors.index.json: no tensor named 'transformer.wte.weight_' (closest: "));
}

TEST(ShardedCheckpointTest, BrokenIndexesNameTheProblem) {
  const auto dir = write_sharded(scratch_dir("sharded"));
  const auto index = dir / "model.safetensors.index.json";
  auto json = nlohmann::json::parse(read_text(index));

  fs::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_THAT(error_of([&] { load_model(dir); }),
              HasSubstr("model-00002-of-00002.safetensors: not found (a shard listed in "
                        "model.safetensors.index.json)"));

  auto wrong = json;
  wrong["weight_map"]["extra.weight"] = "model-00001-of-00002.safetensors";
  wrong["weight_map"].erase("transformer.wte.weight");
  for (auto& shard : wrong["weight_map"]) shard = "model-00001-of-00002.safetensors";
  std::ofstream(index) << wrong.dump();
  EXPECT_THAT(error_of([&] { load_model(dir); }),
              HasSubstr("model-00001-of-00002.safetensors: has no tensor '"));

  write_sharded(scratch_dir("sharded"));  // fresh copy
  auto twice = SafetensorsFile::open(dir / "model-00001-of-00002.safetensors");
  save_safetensors(dir / "model-00002-of-00002.safetensors",
                   {{twice.entries()[0].name, twice.tensor(twice.entries()[0].name)}});
  EXPECT_THAT(error_of([&] { load_model(dir); }),
              HasSubstr("is also in model-00001-of-00002.safetensors"));

  write_sharded(scratch_dir("sharded"));
  std::ofstream(index) << R"({"weight_map": {"transformer.wte.weight": "../model.safetensors"}})";
  EXPECT_THAT(error_of([&] { load_model(dir); }),
              HasSubstr("which is not a file name inside the checkpoint's folder"));
  std::ofstream(index) << R"({"metadata": {}})";
  EXPECT_THAT(
      error_of([&] { load_model(dir); }),
      HasSubstr(
          "model.safetensors.index.json: expected {\"weight_map\": {tensor name: shard file name"));
}

TEST_F(HubTest, PullsShardedCheckpoints) {
  const auto sharded = write_sharded(scratch_dir("sharded-source"));
  nlohmann::json files = nlohmann::json::object();
  for (const char* name :
       {"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors"}) {
    files[name] = (sharded / name).string();
  }
  START_HUB(
      server,
      (nlohmann::json{
          {"repos",
           {{"org/sharded", {{"revisions", {{"main", kMain}}}, {"commits", {{kMain, files}}}}}}}}));
  const auto result = hub::pull(hub::parse_model_ref("org/sharded"), options(*server));
  std::vector<std::string> names;
  for (const auto& f : result.files) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"config.json", "model.safetensors.index.json",
                                             "model-00001-of-00002.safetensors",
                                             "model-00002-of-00002.safetensors"}));
  set_env("HF_HUB_CACHE", cache_.string());
  EXPECT_TRUE(at::equal(logits_of("org/sharded"), reference_logits()));
}

}  // namespace
}  // namespace llmscope::testing
