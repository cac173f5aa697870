// llmscope lesson list | run NAME: the course's lessons (Lua scripts in lessons/), run headless
// on the built-in model unless --model says otherwise, each writing a report folder.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>

#include "cli_common.hpp"
#include "llmscope/lua/host.hpp"

namespace llmscope::cli {
namespace {

struct LessonFile {
  std::string id;     // "12-02"
  std::string name;   // the file stem, "12-02_actmax"
  std::string title;  // from the `-- lesson: ID TITLE` line
  std::filesystem::path path;
};

// Every lessons/*.lua with a `-- lesson:` header line, in id order.
std::vector<LessonFile> find_lessons(const std::filesystem::path& dir) {
  std::vector<LessonFile> lessons;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".lua") continue;
    std::ifstream in(entry.path());
    std::string line;
    for (int i = 0; i < 5 && std::getline(in, line); ++i) {
      const std::string tag = "-- lesson: ";
      if (line.rfind(tag, 0) != 0) continue;
      const std::string rest = line.substr(tag.size());
      const auto space = rest.find(' ');
      lessons.push_back({rest.substr(0, space), entry.path().stem().string(),
                         space == std::string::npos ? "" : rest.substr(space + 1), entry.path()});
      break;
    }
  }
  std::sort(lessons.begin(), lessons.end(),
            [](const LessonFile& a, const LessonFile& b) { return a.name < b.name; });
  return lessons;
}

// A lesson by id ("12-02"), file stem ("12-02_actmax") or the part after the id ("actmax").
const LessonFile& find_lesson(const std::vector<LessonFile>& lessons, const std::string& wanted) {
  for (const auto& l : lessons) {
    const auto underscore = l.name.find('_');
    const std::string slug =
        underscore == std::string::npos ? l.name : l.name.substr(underscore + 1);
    if (wanted == l.id || wanted == l.name || wanted == slug) return l;
  }
  std::string known;
  for (const auto& l : lessons) known += "\n  " + l.name;
  throw UsageError("no lesson '" + wanted + "'; the lessons are:" + known);
}

int list_lessons(const std::vector<LessonFile>& lessons) {
  for (const auto& l : lessons) {
    std::cout << l.name << std::string(l.name.size() < 32 ? 32 - l.name.size() : 1, ' ') << l.title
              << "\n";
  }
  return 0;
}

}  // namespace

int run_lesson(const std::vector<std::string>& all_args) {
  // Not a structured binding: the job's lambda captures script_args, which C++17 forbids for one.
  auto split = split_script_args(all_args);
  const std::vector<std::string>& args = split.first;
  std::vector<std::string>& script_args = split.second;

  po::options_description options("lesson options");
  add_host_options(options);
  add_job_options(options);
  options.add_options()("action", po::value<std::string>()->required(), "list | run")(
      "name", po::value<std::string>(),
      "the lesson to run: its id (12-02), file name or short name")(
      "text", po::value<std::string>(), "a UTF-8 text file to use instead of the Brown corpus")(
      "out,o", po::value<std::string>(),
      "output folder (default out/lessons/<lesson>/<timestamp>/)")(
      "lessons", po::value<std::string>(),
      "the lessons folder (default: the one shipped with llmscope)");
  po::positional_options_description positional;
  positional.add("action", 1).add("name", 1);
  po::variables_map vm;
  if (!parse_args("lesson",
                  "list | run NAME [--model DIR] [--text FILE] [--out DIR] [-- --option value ...]",
                  args, options, vm, &positional)) {
    return 0;
  }
  const std::filesystem::path dir = vm.count("lessons")
                                        ? std::filesystem::path(vm["lessons"].as<std::string>())
                                        : shipped_path("lessons");
  if (!std::filesystem::is_directory(dir))
    throw UsageError(dir.string() + ": no lessons folder here");
  const auto lessons = find_lessons(dir);
  const auto action = vm["action"].as<std::string>();
  if (action == "list") return list_lessons(lessons);
  if (action != "run") throw UsageError("unknown action '" + action + "' (expected list or run)");
  if (!vm.count("name"))
    throw UsageError("lesson run: which lesson? (`llmscope lesson list` shows them)");
  const auto& lesson = find_lesson(lessons, vm["name"].as<std::string>());

  auto host_opts = host_options(vm);
  host_opts.out_dir = vm.count("out")
                          ? std::filesystem::path(vm["out"].as<std::string>())
                          : timestamped_out_dir(std::filesystem::path("lessons") / lesson.name);
  if (vm.count("text")) {
    const std::string text = vm["text"].as<std::string>();
    if (!std::filesystem::is_regular_file(text))
      throw UsageError("--text " + text + ": no such file");
    script_args.insert(script_args.begin(), {"--text", std::filesystem::absolute(text).string()});
  }
  std::vector<std::string> command = {"lesson"};
  command.insert(command.end(), all_args.begin(), all_args.end());
  return run_as_job(vm, command, std::move(host_opts), [&](lua::HostOptions job_opts) {
    std::cerr << "lesson " << lesson.name << " on " << job_opts.model_dir << " -> "
              << job_opts.out_dir.string() << "\n";
    lua::LuaHost host(std::move(job_opts));
    return host.run_file(lesson.path, script_args);
  });
}

}  // namespace llmscope::cli
