// PluginHost: finds plugin libraries on the search path, checks each one's descriptor before
// running any of its code, and owns the loaded libraries. A LoadedPlugin is shared: everything
// made from a plugin (its functions in Lua, native hooks it installed) holds a reference, so a
// library is unloaded only after the last of them is gone — calling after unload cannot happen.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llmscope/plugin_api.hpp"

namespace llmscope::plugin {

struct PluginInfo {
  std::string name, version, description;
  uint32_t abi_major = 0, abi_minor = 0;
  std::filesystem::path path;
};

class LoadedPlugin {
 public:
  ~LoadedPlugin();
  const PluginInfo& info() const { return info_; }
  const Module& module() const { return *module_; }
  // Calls a function, turning whatever it throws into llmscope::Error naming the plugin and
  // function (ArgumentError passes through for the caller to format).
  Value call(const Function& fn, const List& args) const;

 private:
  friend class PluginHost;
  struct Library;
  std::shared_ptr<Library> library_;  // declared first: unloaded after the module is destroyed
  PluginInfo info_;
  std::shared_ptr<Module> module_;
};

// One line per plugin file found: either loadable, or why not.
struct PluginListing {
  std::filesystem::path path;
  std::shared_ptr<const LoadedPlugin> plugin;  // null when it could not be loaded
  std::string problem;                         // why not
};

class PluginHost {
 public:
  // The search path, in order: `extra` (--plugin-path), $LLMSCOPE_PLUGIN_PATH (':'-separated),
  // the build tree's plugin folder, and <prefix>/lib/llmscope/plugins beside the executable.
  explicit PluginHost(std::vector<std::filesystem::path> extra = {});

  const std::vector<std::filesystem::path>& search_path() const { return search_path_; }

  // Loads (or returns the already loaded) plugin `name`; throws llmscope::Error with the exact
  // reason when it is missing or refused.
  std::shared_ptr<const LoadedPlugin> load(const std::string& name);
  // Loads the library at `path` directly (tests, or a plugin outside the search path).
  std::shared_ptr<const LoadedPlugin> load_file(const std::filesystem::path& path);
  // Forgets a plugin; its library unloads once nothing made from it remains.
  void unload(const std::string& name);
  bool is_loaded(const std::string& name) const { return loaded_.count(name) > 0; }

  // Every plugin file on the search path, loaded to read its descriptor and functions.
  std::vector<PluginListing> discover();

  // "llmscope_plugin_<name>.so" and "libllmscope_plugin_<name>.so" are plugin files.
  static std::string plugin_name_of(const std::filesystem::path& file);

 private:
  std::vector<std::filesystem::path> search_path_;
  std::map<std::string, std::shared_ptr<const LoadedPlugin>> loaded_;
};

}  // namespace llmscope::plugin
