// The `report` module: what a script adds to its run's report (text, figures, tables, tensors,
// raw HTML) and the manifest written with it. Without an output folder (the REPL, tests) the
// functions raise a clear error instead of writing somewhere unexpected.
#include <cstdio>
#include <map>

#include "binding.hpp"
#include "figure_binding.hpp"
#include "host_context.hpp"
#include "llmscope/error.hpp"
#include "llmscope/sha256.hpp"

namespace llmscope::lua {
namespace {

Report& check_report(lua_State* L) {
  HostContext& host = host_context(L);
  if (!host.report)
    throw Error("this run has no report folder (llmscope run writes one; pass --out DIR)");
  return *host.report;
}

std::string optional_caption(lua_State* L, int opts) {
  return opt_string(L, opts, "caption").value_or("");
}

int report_title(lua_State* L) {
  check_report(L).set_title(check_string(L, 1));
  return 0;
}

int report_text(lua_State* L) {
  check_report(L).text(check_string(L, 1));
  write_report(L);  // after every section: a run that dies later leaves what it did
  return 0;
}

int report_html(lua_State* L) {
  check_report(L).html(check_string(L, 1));
  write_report(L);
  return 0;
}

// report.figure(fig, {name = "...", caption = "..."}) -> path of the PNG
int report_figure(lua_State* L) {
  Report& report = check_report(L);
  const figures::Figure* figure = test_figure(L, 1);
  if (!figure) type_error(L, 1, "figure");
  check_option_keys(L, 2, {"name", "caption"});
  HostContext& host = host_context(L);
  std::string name =
      opt_string(L, 2, "name").value_or("figure-" + std::to_string(++host.figure_count));
  name = Report::slug(name);
  std::filesystem::create_directories(report.figures_dir());
  auto png = report.figures_dir() / (name + ".png");
  figure->save(png);
  figure->save(report.figures_dir() / (name + ".svg"));
  report.figure(name, optional_caption(L, 2));
  write_report(L);
  lua_pushstring(L, png.string().c_str());
  return 1;
}

// A table cell as text: numbers with 6 significant digits, like a lab notebook.
std::string cell(lua_State* L, int index) {
  switch (lua_type(L, index)) {
    case LUA_TNUMBER: {
      if (lua_isinteger(L, index)) return std::to_string(lua_tointeger(L, index));
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.6g", lua_tonumber(L, index));
      return buffer;
    }
    case LUA_TSTRING:
      return lua_tostring(L, index);
    case LUA_TBOOLEAN:
      return lua_toboolean(L, index) ? "true" : "false";
    case LUA_TNIL:
      return "";
    default:
      if (at::Tensor* t = test_tensor(L, index)) {
        if (t->numel() == 1) {
          char buffer[32];
          std::snprintf(buffer, sizeof buffer, "%.6g", t->item<double>());
          return buffer;
        }
      }
      throw Error(
          "report.table: cells must be numbers, strings, booleans or 1-element tensors, got " +
          type_name(L, index));
  }
}

std::vector<std::string> string_list(lua_State* L, int index, const char* what) {
  std::vector<std::string> out;
  if (lua_type(L, index) != LUA_TTABLE)
    throw ArgError(2, std::string(what) + " must be a list of strings");
  for (lua_Integer i = 1; i <= static_cast<lua_Integer>(lua_rawlen(L, index)); ++i) {
    lua_rawgeti(L, index, i);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      throw ArgError(2, std::string(what) + " must be a list of strings");
    }
    out.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return out;
}

// report.table(name, {columns = {...}, rows = {{...}, ...}} | {columns = {...}, data = {col =
// list|tensor}}, {caption})
int report_table(lua_State* L) {
  Report& report = check_report(L);
  std::string name = check_string(L, 1);
  check_table(L, 2);
  check_option_keys(L, 2, {"columns", "rows", "data"});
  check_option_keys(L, 3, {"caption"});
  lua_getfield(L, 2, "columns");
  auto columns = string_list(L, lua_gettop(L), "columns");
  lua_pop(L, 1);
  if (columns.empty()) throw ArgError(2, "columns must name at least one column");
  std::vector<std::vector<std::string>> rows;
  if (lua_getfield(L, 2, "rows") == LUA_TTABLE) {
    int rows_index = lua_gettop(L);
    for (lua_Integer r = 1; r <= static_cast<lua_Integer>(lua_rawlen(L, rows_index)); ++r) {
      if (lua_rawgeti(L, rows_index, r) != LUA_TTABLE)
        throw ArgError(2, "rows must be a list of lists");
      std::vector<std::string> row;
      int row_index = lua_gettop(L);
      for (lua_Integer c = 1; c <= static_cast<lua_Integer>(lua_rawlen(L, row_index)); ++c) {
        lua_rawgeti(L, row_index, c);
        row.push_back(cell(L, -1));
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
      rows.push_back(std::move(row));
    }
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 2, "data") == LUA_TTABLE) {
    int data = lua_gettop(L);
    size_t length = 0;
    std::vector<std::vector<std::string>> by_column;
    for (const auto& column : columns) {
      std::vector<std::string> values;
      lua_getfield(L, data, column.c_str());
      if (at::Tensor* t = test_tensor(L, -1)) {
        auto flat = t->detach().to(at::kCPU, at::kDouble).reshape(-1);
        for (int64_t i = 0; i < flat.numel(); ++i) {
          char buffer[32];
          std::snprintf(buffer, sizeof buffer, "%.6g", flat[i].item<double>());
          values.emplace_back(buffer);
        }
      } else if (lua_type(L, -1) == LUA_TTABLE) {
        int list = lua_gettop(L);
        for (lua_Integer i = 1; i <= static_cast<lua_Integer>(lua_rawlen(L, list)); ++i) {
          lua_rawgeti(L, list, i);
          values.push_back(cell(L, -1));
          lua_pop(L, 1);
        }
      } else {
        lua_pop(L, 1);
        throw ArgError(2, "data." + column + " must be a list or a tensor");
      }
      lua_pop(L, 1);
      if (!by_column.empty() && values.size() != length) {
        throw ArgError(2, "data columns differ in length (" + columns[0] + " has " +
                              std::to_string(length) + ", " + column + " has " +
                              std::to_string(values.size()) + ")");
      }
      length = values.size();
      by_column.push_back(std::move(values));
    }
    for (size_t r = 0; r < length; ++r) {
      std::vector<std::string> row;
      for (const auto& column : by_column) row.push_back(column[r]);
      rows.push_back(std::move(row));
    }
  }
  lua_pop(L, 1);
  report.table(name, columns, rows, optional_caption(L, 3));
  write_report(L);
  return 0;
}

int report_tensor(lua_State* L) {
  Report& report = check_report(L);
  std::string name = check_string(L, 1);
  const at::Tensor& t = check_tensor(L, 2);
  check_option_keys(L, 3, {"caption"});
  report.tensor(name, t, optional_caption(L, 3));
  write_report(L);
  return 0;
}

// report.set({key = value, ...}): extra manifest lines (seed = n is the run's seed).
int report_set(lua_State* L) {
  HostContext& host = host_context(L);
  check_table(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      throw ArgError(1, "keys must be strings");
    }
    std::string key = lua_tostring(L, -2);
    std::string value = cell(L, -1);
    lua_pop(L, 1);
    if (key == "seed") {
      host.manifest.seed = value;
    } else {
      host.manifest.extra.emplace_back(key, value);
    }
  }
  return 0;
}

int report_dir(lua_State* L) {
  lua_pushstring(L, check_report(L).dir().string().c_str());
  return 1;
}

int report_save(lua_State* L) {
  check_report(L);
  write_report(L);
  return 0;
}

}  // namespace

void write_report(lua_State* L) {
  HostContext& host = host_context(L);
  if (!host.report) return;
  static std::map<std::string, std::string> hashes;  // weights do not change during a run
  RunManifest manifest = host.manifest;
  for (const auto& dir : host.model_dirs) {
    auto weights = std::filesystem::path(dir) / "model.safetensors";
    auto& hash = hashes[weights.string()];
    if (hash.empty()) hash = std::filesystem::exists(weights) ? sha256_file(weights) : "unknown";
    manifest.models.emplace_back(dir, hash);
  }
  host.report->write(manifest);
}

void open_report(lua_State* L) {
  const luaL_Reg functions[] = {
      {"title", entry<report_title>},   {"text", entry<report_text>},
      {"figure", entry<report_figure>}, {"table", entry<report_table>},
      {"tensor", entry<report_tensor>}, {"html", entry<report_html>},
      {"set", entry<report_set>},       {"dir", entry<report_dir>},
      {"save", entry<report_save>},     {nullptr, nullptr},
  };
  luaL_newlib(L, functions);
  lua_setglobal(L, "report");
}

}  // namespace llmscope::lua
