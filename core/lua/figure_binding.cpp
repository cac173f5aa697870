// The `figure` module and the llmscope.Figure type: line, scatter, histogram, heatmap, bar and
// strip plots built from one option table each and saved as PNG or SVG by gnuplot, plus token
// heatmaps as HTML. Option tables are checked key by key, so a typo is an error, not a default.
#include "figure_binding.hpp"

#include <string>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "llmscope/error.hpp"
#include "llmscope/figures.hpp"

namespace llmscope::lua {
namespace {

namespace fig = llmscope::figures;

// ---- Reading option tables (the options are always argument 1, except token_heatmap's) ----

// Keys every plot takes, then the ones each kind adds.
const std::vector<const char*> kCommon = {"title", "xlabel", "ylabel", "legend",   "xlim",
                                          "ylim",  "width",  "height", "font_size"};

std::vector<const char*> keys(std::initializer_list<const char*> extra) {
  std::vector<const char*> all(extra);
  all.insert(all.end(), kCommon.begin(), kCommon.end());
  return all;
}

// Pushes opts[key]; returns its type.
int push_field(lua_State* L, int table, const char* key) { return lua_getfield(L, table, key); }

// {min, max} as a Range.
std::optional<fig::Range> opt_range(lua_State* L, int opts, const char* key) {
  int type = push_field(L, opts, key);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  bool ok = type == LUA_TTABLE && lua_rawlen(L, -1) == 2;
  double values[2] = {0, 0};
  for (int i = 0; ok && i < 2; ++i) {
    lua_rawgeti(L, -1, i + 1);
    int is_number = 0;
    values[i] = lua_tonumberx(L, -1, &is_number);
    ok = is_number && lua_type(L, -1) == LUA_TNUMBER;
    lua_pop(L, 1);
  }
  std::string got = type_name(L, -1);
  lua_pop(L, 1);
  if (!ok)
    throw ArgError(opts, "option '" + std::string(key) + "' must be {min, max}, got " +
                             (type == LUA_TTABLE ? "another table" : got));
  return fig::Range{values[0], values[1]};
}

fig::Options common_options(lua_State* L, int opts, bool logx, bool logy) {
  fig::Options o;
  if (auto v = opt_string(L, opts, "title")) o.title = *v;
  if (auto v = opt_string(L, opts, "xlabel")) o.xlabel = *v;
  if (auto v = opt_string(L, opts, "ylabel")) o.ylabel = *v;
  if (auto v = opt_string(L, opts, "legend")) o.legend = *v;
  o.xlim = opt_range(L, opts, "xlim");
  o.ylim = opt_range(L, opts, "ylim");
  auto dimension = [&](const char* key, int fallback) {
    auto v = opt_integer(L, opts, key);
    if (v && (*v < 64 || *v > 10000)) {
      throw ArgError(opts, "option '" + std::string(key) +
                               "' must be between 64 and 10000 pixels, got " + std::to_string(*v));
    }
    return v ? static_cast<int>(*v) : fallback;
  };
  o.width = dimension("width", o.width);
  o.height = dimension("height", o.height);
  if (auto v = opt_number(L, opts, "font_size")) o.font_size = *v;
  if (logx) o.logx = opt_boolean(L, opts, "logx").value_or(false);
  if (logy) o.logy = opt_boolean(L, opts, "logy").value_or(false);
  return o;
}

fig::Palette opt_palette(lua_State* L, int opts) {
  auto name = opt_string(L, opts, "palette");
  if (!name || *name == "viridis") return fig::Palette::kViridis;
  if (*name == "diverging") return fig::Palette::kDiverging;
  throw ArgError(opts, "unknown palette '" + *name + "' (expected viridis or diverging)");
}

// The value on top of the stack as a tensor: a tensor, or a (nested) table of numbers.
// `where` names it in errors: "series[2].y".
at::Tensor top_tensor(lua_State* L, int arg, const std::string& where) {
  if (at::Tensor* t = test_tensor(L, -1)) return *t;
  if (lua_type(L, -1) == LUA_TTABLE) {
    try {
      return to_tensor(L, lua_gettop(L));
    } catch (const ArgError& e) {
      throw ArgError(arg, where + ": " + e.what());
    }
  }
  throw ArgError(arg, where + " must be a tensor or a table of numbers, got " + type_name(L, -1));
}

// opts[key] as a tensor, or an undefined tensor when absent (an error when `required`).
at::Tensor field_tensor(lua_State* L, int table, int arg, const char* key, const std::string& where,
                        bool required) {
  if (push_field(L, table, key) == LUA_TNIL) {
    lua_pop(L, 1);
    if (required) throw ArgError(arg, where + " is required (a tensor or a table of numbers)");
    return at::Tensor();
  }
  at::Tensor t = top_tensor(L, arg, where);
  lua_pop(L, 1);
  return t;
}

// A Lua array of strings (numbers are accepted and written as Lua writes them).
std::vector<std::string> top_string_list(lua_State* L, int arg, const std::string& where) {
  if (lua_type(L, -1) != LUA_TTABLE)
    throw ArgError(arg, where + " must be a list of strings, got " + type_name(L, -1));
  const int list = lua_gettop(L);
  std::vector<std::string> out;
  const auto n = static_cast<lua_Integer>(lua_rawlen(L, list));
  for (lua_Integer i = 1; i <= n; ++i) {
    int type = lua_rawgeti(L, list, i);
    if (type != LUA_TSTRING && type != LUA_TNUMBER) {
      std::string got = type_name(L, -1);
      lua_pop(L, 1);
      throw ArgError(arg, where + " must be a list of strings (entry " + std::to_string(i) +
                              " is a " + got + ")");
    }
    size_t length = 0;
    const char* text =
        lua_tolstring(L, -1, &length);  // converts the copy on the stack, not the table's
    out.emplace_back(text, length);
    lua_pop(L, 1);
  }
  return out;
}

std::vector<std::string> field_strings(lua_State* L, int opts, const char* key) {
  if (push_field(L, opts, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return {};
  }
  auto out = top_string_list(L, opts, "option '" + std::string(key) + "'");
  lua_pop(L, 1);
  return out;
}

std::string field_label(lua_State* L, int table, int arg, const std::string& where) {
  int type = push_field(L, table, "label");
  std::string label;
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    label = lua_tostring(L, -1);
  } else if (type != LUA_TNIL) {
    std::string got = type_name(L, -1);
    lua_pop(L, 1);
    throw ArgError(arg, where + ".label must be a string, got " + got);
  }
  lua_pop(L, 1);
  return label;
}

// Every key of the entry table on top of the stack is one of `known`.
void check_entry_keys(lua_State* L, int arg, const std::string& where,
                      const std::vector<const char*>& known) {
  if (auto key = unknown_key(L, lua_gettop(L), known)) {
    throw ArgError(arg, where + ": unknown key '" + *key + "' (expected " + key_list(known) + ")");
  }
}

// Walks opts[key], a non-empty list of entries; `read` sees each entry on top of the stack
// with its name ("series[1]").
template <typename Read>
void each_entry(lua_State* L, int opts, const char* key, const char* expected, Read read) {
  int type = push_field(L, opts, key);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    throw ArgError(opts, "option '" + std::string(key) + "' is required (" + expected + ")");
  }
  if (type != LUA_TTABLE || lua_rawlen(L, -1) == 0) {
    std::string got = type == LUA_TTABLE ? "an empty table" : type_name(L, -1);
    lua_pop(L, 1);
    throw ArgError(opts, "option '" + std::string(key) + "' must be " + expected + ", got " + got);
  }
  const int list = lua_gettop(L);
  const auto n = static_cast<lua_Integer>(lua_rawlen(L, list));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, list, i);
    read(std::string(key) + "[" + std::to_string(i) + "]");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

// The entry on top of the stack is its values alone (a tensor, or a list of numbers such as
// {1, 2, 3}), or else a table of named fields.
bool entry_is_values(lua_State* L, int arg, const std::string& where) {
  if (test_tensor(L, -1)) return true;
  if (lua_type(L, -1) != LUA_TTABLE) {
    throw ArgError(arg, where + " must be a table or a tensor, got " + type_name(L, -1));
  }
  return lua_rawlen(L, -1) > 0;
}

// What every figure's list of series shares: each entry of opts[key] is its values alone (a
// tensor or a list of numbers) or a table with them under `values_key`, a label and the
// figure's own `keys`. `fill(values, entry, where)` gets entry 0 for values alone, else the
// table's stack index, to read the figure's own fields from.
template <typename Fill>
void each_series(lua_State* L, const char* key, const char* expected, const char* values_key,
                 const std::vector<const char*>& keys, Fill fill) {
  each_entry(L, 1, key, expected, [&](const std::string& where) {
    if (entry_is_values(L, 1, where)) {
      fill(top_tensor(L, 1, where), 0, where);
      return;
    }
    check_entry_keys(L, 1, where, keys);
    const int entry = lua_gettop(L);
    fill(field_tensor(L, entry, 1, values_key, where + "." + values_key, true), entry, where);
  });
}

std::optional<double> opt_alpha(lua_State* L, int opts) {
  auto alpha = opt_number(L, opts, "alpha");
  if (alpha && !(*alpha > 0 && *alpha <= 1))
    throw ArgError(opts, "option 'alpha' must be in (0, 1]");
  return alpha;
}

void check_options_table(lua_State* L, int opts) {
  if (lua_type(L, opts) != LUA_TTABLE) type_error(L, opts, "table of options");
}

// ---- Module functions ----

// The new figure as the Lua value a module function returns.
int push_figure(lua_State* L, fig::Figure figure) {
  push_userdata<fig::Figure>(L, kFigureType, std::move(figure));
  return 1;
}

int f_line(lua_State* L) {
  check_options_table(L, 1);
  check_option_keys(L, 1, keys({"series", "x", "markers", "logx", "logy"}));
  fig::LineOptions lo;
  lo.x = field_tensor(L, 1, 1, "x", "option 'x'", false);
  lo.markers = opt_boolean(L, 1, "markers").value_or(false);
  std::vector<fig::LineSeries> series;
  each_series(L, "series",
              "a list of {y = tensor, x = tensor?, label = string?, marker = string?, color = "
              "string?, dashed = bool?}",
              "y", {"y", "x", "label", "marker", "color", "dashed"},
              [&](at::Tensor y, int entry, const std::string& where) {
                fig::LineSeries s;
                s.y = std::move(y);
                if (entry) {
                  s.x = field_tensor(L, entry, 1, "x", where + ".x", false);
                  s.label = field_label(L, entry, 1, where);
                  s.marker = opt_string(L, entry, "marker").value_or("");
                  s.color = opt_string(L, entry, "color").value_or("");
                  s.dashed = opt_boolean(L, entry, "dashed").value_or(false);
                }
                series.push_back(std::move(s));
              });
  return push_figure(L, fig::line(series, lo, common_options(L, 1, true, true)));
}

int f_scatter(lua_State* L) {
  check_options_table(L, 1);
  check_option_keys(L, 1,
                    keys({"x", "y", "color", "alpha", "size", "palette", "vmin", "vmax",
                          "colorbar_label", "logx", "logy"}));
  at::Tensor x = field_tensor(L, 1, 1, "x", "option 'x'", true);
  at::Tensor y = field_tensor(L, 1, 1, "y", "option 'y'", true);
  fig::ScatterOptions so;
  so.color = field_tensor(L, 1, 1, "color", "option 'color'", false);
  if (auto a = opt_alpha(L, 1)) so.alpha = *a;
  if (auto s = opt_number(L, 1, "size")) so.point_size = *s;
  so.palette = opt_palette(L, 1);
  so.vmin = opt_number(L, 1, "vmin");
  so.vmax = opt_number(L, 1, "vmax");
  so.colorbar_label = opt_string(L, 1, "colorbar_label").value_or("");
  return push_figure(L, fig::scatter(x, y, so, common_options(L, 1, true, true)));
}

int f_histogram(lua_State* L) {
  check_options_table(L, 1);
  check_option_keys(L, 1, keys({"series", "bins", "edges", "density", "alpha", "logy"}));
  fig::HistogramOptions ho;
  if (auto b = opt_integer(L, 1, "bins")) ho.bins = *b;
  at::Tensor edges = field_tensor(L, 1, 1, "edges", "option 'edges'", false);
  if (edges.defined()) {
    if (edges.dim() != 1) throw ArgError(1, "option 'edges' must be a list of numbers");
    at::Tensor e = edges.detach().to(at::kCPU).to(at::kDouble).contiguous();
    ho.edges.assign(e.data_ptr<double>(), e.data_ptr<double>() + e.numel());
    if (ho.edges.size() < 2) throw ArgError(1, "option 'edges' needs at least 2 values");
  }
  ho.density = opt_boolean(L, 1, "density").value_or(false);
  ho.alpha = opt_alpha(L, 1);
  std::vector<fig::HistogramSeries> series;
  each_series(L, "series", "a list of {values = tensor, label = string?}", "values",
              {"values", "label"}, [&](at::Tensor values, int entry, const std::string& where) {
                fig::HistogramSeries s;
                s.values = std::move(values);
                if (entry) s.label = field_label(L, entry, 1, where);
                series.push_back(std::move(s));
              });
  return push_figure(L, fig::histogram(series, ho, common_options(L, 1, false, true)));
}

int f_heatmap(lua_State* L) {
  check_options_table(L, 1);
  check_option_keys(
      L, 1, keys({"values", "vmin", "vmax", "palette", "xlabels", "ylabels", "colorbar_label"}));
  at::Tensor values = field_tensor(L, 1, 1, "values", "option 'values'", true);
  fig::HeatmapOptions ho;
  ho.vmin = opt_number(L, 1, "vmin");
  ho.vmax = opt_number(L, 1, "vmax");
  ho.palette = opt_palette(L, 1);
  ho.xlabels = field_strings(L, 1, "xlabels");
  ho.ylabels = field_strings(L, 1, "ylabels");
  ho.colorbar_label = opt_string(L, 1, "colorbar_label").value_or("");
  return push_figure(L, fig::heatmap(values, ho, common_options(L, 1, false, false)));
}

int f_bar(lua_State* L) {
  check_options_table(L, 1);
  check_option_keys(L, 1, keys({"categories", "series"}));
  if (push_field(L, 1, "categories") == LUA_TNIL) {
    lua_pop(L, 1);
    throw ArgError(1, "option 'categories' is required (a list of strings)");
  }
  std::vector<std::string> categories = top_string_list(L, 1, "option 'categories'");
  lua_pop(L, 1);
  std::vector<fig::BarSeries> series;
  each_series(L, "series", "a list of {values = tensor or {numbers}, label = string?}", "values",
              {"values", "label"}, [&](at::Tensor values, int entry, const std::string& where) {
                fig::BarSeries s;
                if (entry) s.label = field_label(L, entry, 1, where);
                if (values.dim() != 1)
                  throw ArgError(1, where + ".values must be a list of numbers (1-D)");
                if (values.is_complex()) throw ArgError(1, where + ".values must be real numbers");
                at::Tensor v = values.detach().to(at::kCPU).to(at::kDouble).contiguous();
                s.values.assign(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
                series.push_back(std::move(s));
              });
  return push_figure(L, fig::bar(categories, series, common_options(L, 1, false, false)));
}

int f_strip(lua_State* L) {
  check_options_table(L, 1);
  check_option_keys(L, 1,
                    keys({"groups", "jitter", "seed", "alpha", "size", "palette", "vmin", "vmax",
                          "colorbar_label"}));
  fig::StripOptions so;
  if (auto j = opt_number(L, 1, "jitter")) so.jitter = *j;
  if (auto s = opt_integer(L, 1, "seed")) so.seed = static_cast<uint64_t>(*s);
  if (auto a = opt_alpha(L, 1)) so.alpha = *a;
  if (auto s = opt_number(L, 1, "size")) so.point_size = *s;
  so.palette = opt_palette(L, 1);
  so.vmin = opt_number(L, 1, "vmin");
  so.vmax = opt_number(L, 1, "vmax");
  so.colorbar_label = opt_string(L, 1, "colorbar_label").value_or("");
  std::vector<fig::StripGroup> groups;
  each_series(L, "groups", "a list of {values = tensor, label = string?, color = tensor?}",
              "values", {"values", "label", "color"},
              [&](at::Tensor values, int entry, const std::string& where) {
                fig::StripGroup g;
                g.values = std::move(values);
                if (entry) {
                  g.color = field_tensor(L, entry, 1, "color", where + ".color", false);
                  g.label = field_label(L, entry, 1, where);
                }
                groups.push_back(std::move(g));
              });
  return push_figure(L, fig::strip(groups, so, common_options(L, 1, false, false)));
}

// figure.token_heatmap(tokens, values, {title=, vmin=, vmax=}) -> HTML string
int f_token_heatmap(lua_State* L) {
  check_table(L, 1);
  lua_pushvalue(L, 1);
  std::vector<std::string> tokens = top_string_list(L, 1, "tokens");
  lua_pop(L, 1);
  at::Tensor values = to_tensor(L, 2);
  check_option_keys(L, 3, {"title", "vmin", "vmax"});
  fig::TokenHeatmapOptions options;
  options.title = opt_string(L, 3, "title").value_or("");
  options.vmin = opt_number(L, 3, "vmin");
  options.vmax = opt_number(L, 3, "vmax");
  std::string html = fig::token_heatmap_html(tokens, values, options);
  lua_pushlstring(L, html.data(), html.size());
  return 1;
}

// figure.save_html(path, html) -> path
int f_save_html(lua_State* L) {
  std::string path = check_string(L, 1);
  std::string html = check_string(L, 2);
  fig::save_html(path, html);
  lua_pushvalue(L, 1);
  return 1;
}

// ---- Methods ----

const fig::Figure& check_figure(lua_State* L, int arg) {
  return check_userdata<fig::Figure>(L, arg, kFigureType, "figure");
}

// fig:save(path) -> path (.png or .svg)
int m_save(lua_State* L) {
  const fig::Figure& figure = check_figure(L, 1);
  std::string path = check_string(L, 2);
  figure.save(path);
  lua_pushvalue(L, 2);
  return 1;
}

int m_kind(lua_State* L) {
  lua_pushstring(L, fig::kind_name(check_figure(L, 1).kind()));
  return 1;
}

int m_tostring(lua_State* L) {
  const fig::Figure& figure = check_figure(L, 1);
  std::string text = std::string("figure(") + fig::kind_name(figure.kind());
  if (!figure.options().title.empty()) text += ", '" + figure.options().title + "'";
  text += ")";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

const luaL_Reg kMethods[] = {
    {"save", entry<m_save>},
    {"kind", entry<m_kind>},
    {nullptr, nullptr},
};

const luaL_Reg kModule[] = {
    {"line", entry<f_line>},
    {"scatter", entry<f_scatter>},
    {"histogram", entry<f_histogram>},
    {"heatmap", entry<f_heatmap>},
    {"bar", entry<f_bar>},
    {"strip", entry<f_strip>},
    {"token_heatmap", entry<f_token_heatmap>},
    {"save_html", entry<f_save_html>},
    {nullptr, nullptr},
};

}  // namespace

const figures::Figure* test_figure(lua_State* L, int index) {
  return test_userdata<figures::Figure>(L, index, kFigureType);
}

void open_figure(lua_State* L) {
  new_type(L, kFigureType, kMethods, destroy_userdata<figures::Figure>);
  lua_pushcfunction(L, entry<m_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);  // the metatable

  luaL_newlib(L, kModule);
  lua_setglobal(L, "figure");
}

}  // namespace llmscope::lua
