// The `stats` module: batch statistics over [samples, neurons] tensors (t-tests, corrections,
// per-neuron logistic regression, correlation, histograms, PCA, cosine similarity, RSA, mutual
// information, Kendall's tau) and the
// streaming reducers (llmscope.RunningStats, llmscope.TopK, llmscope.HistogramStream,
// llmscope.QuantileSketch, llmscope.CovarianceStream). Groups, documents, positions and neurons
// are 0-based.
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "binding.hpp"
#include "llmscope/error.hpp"
#include "llmscope/stats.hpp"
#include "llmscope/streaming.hpp"

namespace llmscope::lua {
namespace {

inline constexpr const char* kRunningStatsType = "llmscope.RunningStats";
inline constexpr const char* kTopKType = "llmscope.TopK";
inline constexpr const char* kHistogramStreamType = "llmscope.HistogramStream";
inline constexpr const char* kQuantileSketchType = "llmscope.QuantileSketch";
inline constexpr const char* kCovarianceStreamType = "llmscope.CovarianceStream";

// ---- arguments ----

// A tensor, or a Lua array of numbers read in float64 (so p-values and edges keep their
// precision), or a nested table (tensor.new's rules).
at::Tensor tensor_arg(lua_State* L, int arg) {
  if (at::Tensor* t = test_tensor(L, arg)) return *t;
  if (lua_type(L, arg) != LUA_TTABLE) type_error(L, arg, "tensor");
  if (lua_rawgeti(L, arg, 1) == LUA_TTABLE) {
    lua_pop(L, 1);
    return to_tensor(L, arg);
  }
  lua_pop(L, 1);
  const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, arg));
  std::vector<double> values;
  values.reserve(static_cast<size_t>(n));
  for (lua_Integer i = 1; i <= n; ++i) {
    int ok = 0;
    lua_rawgeti(L, arg, i);
    double value = lua_tonumberx(L, -1, &ok);
    const bool number = ok != 0 && lua_type(L, -1) == LUA_TNUMBER;
    lua_pop(L, 1);
    if (!number)
      throw ArgError(arg,
                     "table of numbers expected, entry " + std::to_string(i) + " is not a number");
    values.push_back(value);
  }
  return at::tensor(values, at::kDouble);
}

int64_t integer_or(lua_State* L, int arg, int64_t fallback) {
  return is_none_or_nil(L, arg) ? fallback : check_integer(L, arg);
}

double number_or(lua_State* L, int arg, double fallback) {
  return is_none_or_nil(L, arg) ? fallback : check_number(L, arg);
}

double alpha_option(lua_State* L, int opts) {
  check_option_keys(L, opts, {"alpha"});
  double alpha = opt_number(L, opts, "alpha").value_or(0.05);
  if (!(alpha > 0 && alpha < 1)) throw ArgError(opts, "option 'alpha' must be in (0, 1)");
  return alpha;
}

// ---- results ----

void set_tensor(lua_State* L, const char* key, at::Tensor t) {
  push_tensor(L, std::move(t));
  lua_setfield(L, -2, key);
}

int push_ttest(lua_State* L, const stats::TTest& r) {
  lua_createtable(L, 0, 3);
  set_tensor(L, "t", r.t);
  set_tensor(L, "df", r.df);
  set_tensor(L, "p", r.p);
  return 1;
}

int push_correction(lua_State* L, const stats::Correction& c) {
  lua_createtable(L, 0, 2);
  set_tensor(L, "rejected", c.rejected);
  set_tensor(L, "p_adjusted", c.p_adjusted);
  return 1;
}

// ---- batch functions ----

// stats.ttest_ind(a, b, {equal_var = true})
int s_ttest_ind(lua_State* L) {
  at::Tensor a = tensor_arg(L, 1);
  at::Tensor b = tensor_arg(L, 2);
  check_option_keys(L, 3, {"equal_var"});
  bool equal_var = opt_boolean(L, 3, "equal_var").value_or(true);
  return push_ttest(L, stats::ttest_ind(a, b, equal_var));
}

// stats.ttest_rel(a, b)
int s_ttest_rel(lua_State* L) {
  at::Tensor a = tensor_arg(L, 1);
  return push_ttest(L, stats::ttest_rel(a, tensor_arg(L, 2)));
}

// stats.ttest_1samp(x, mu = 0)
int s_ttest_1samp(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  return push_ttest(L, stats::ttest_1samp(x, number_or(L, 2, 0.0)));
}

// stats.fdr(p, {alpha = 0.05}) and stats.bonferroni(p, {alpha = 0.05})
int s_fdr(lua_State* L) {
  at::Tensor p = tensor_arg(L, 1);
  return push_correction(L, stats::fdr_bh(p, alpha_option(L, 2)));
}

int s_bonferroni(lua_State* L) {
  at::Tensor p = tensor_arg(L, 1);
  return push_correction(L, stats::bonferroni(p, alpha_option(L, 2)));
}

// stats.logit(x, y, {max_iter = 100, tol = 1e-8})
int s_logit(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  at::Tensor y = tensor_arg(L, 2);
  check_option_keys(L, 3, {"max_iter", "tol"});
  stats::LogitOptions options;
  options.max_iter = opt_integer(L, 3, "max_iter").value_or(options.max_iter);
  options.tol = opt_number(L, 3, "tol").value_or(options.tol);
  if (options.max_iter < 1) throw ArgError(3, "option 'max_iter' must be at least 1");
  if (!(options.tol > 0)) throw ArgError(3, "option 'tol' must be > 0");
  stats::LogitResult r = stats::logit(x, y, options);
  lua_createtable(L, 0, 11);
  set_tensor(L, "coef", r.coef);
  set_tensor(L, "se", r.se);
  set_tensor(L, "p", r.p);
  set_tensor(L, "accuracy", r.accuracy);
  set_tensor(L, "converged", r.converged);
  set_tensor(L, "separated", r.separated);
  set_tensor(L, "iterations", r.iterations);
  set_tensor(L, "llf", r.llf);
  lua_pushnumber(L, r.llnull);
  lua_setfield(L, -2, "llnull");
  set_tensor(L, "prsquared", r.prsquared);
  set_tensor(L, "llr_p", r.llr_p);
  return 1;
}

// stats.pearson(acts, v)
int s_pearson(lua_State* L) {
  at::Tensor acts = tensor_arg(L, 1);
  push_tensor(L, stats::pearson(acts, tensor_arg(L, 2)));
  return 1;
}

// stats.histogram(x, edges, {density = false})
int s_histogram(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  at::Tensor edges = tensor_arg(L, 2);
  check_option_keys(L, 3, {"density"});
  bool density = opt_boolean(L, 3, "density").value_or(false);
  at::Tensor counts = stats::histogram_counts(x, edges);
  push_tensor(L, density ? stats::histogram_density(counts, edges) : counts);
  return 1;
}

// stats.pca(x, {k = all, center = true})
int s_pca(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  check_option_keys(L, 2, {"k", "center"});
  int64_t k = opt_integer(L, 2, "k").value_or(0);
  if (k < 0) throw ArgError(2, "option 'k' must be >= 1");
  bool center = opt_boolean(L, 2, "center").value_or(true);
  stats::Pca r = stats::pca(x, k, center);
  lua_createtable(L, 0, 5);
  set_tensor(L, "components", r.components);
  set_tensor(L, "singular_values", r.singular_values);
  set_tensor(L, "explained_variance", r.explained_variance);
  set_tensor(L, "explained_variance_ratio", r.explained_variance_ratio);
  set_tensor(L, "mean", r.mean);
  return 1;
}

// stats.cosine_matrix(x, y?)
int s_cosine_matrix(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  at::Tensor y = is_none_or_nil(L, 2) ? at::Tensor() : tensor_arg(L, 2);
  push_tensor(L, stats::cosine_matrix(x, y));
  return 1;
}

// stats.correlation_matrix(x, y?)
int s_correlation_matrix(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  at::Tensor y = is_none_or_nil(L, 2) ? at::Tensor() : tensor_arg(L, 2);
  push_tensor(L, stats::correlation_matrix(x, y));
  return 1;
}

// stats.rank(x)
int s_rank(lua_State* L) {
  push_tensor(L, stats::rank_average(tensor_arg(L, 1)));
  return 1;
}

// stats.spearman(acts, v)
int s_spearman(lua_State* L) {
  at::Tensor acts = tensor_arg(L, 1);
  push_tensor(L, stats::spearman(acts, tensor_arg(L, 2)));
  return 1;
}

// stats.correlation_p(r, n)
int s_correlation_p(lua_State* L) {
  at::Tensor r = tensor_arg(L, 1);
  push_tensor(L, stats::correlation_p(r, check_integer(L, 2)));
  return 1;
}

// stats.upper_triangle(s)
int s_upper_triangle(lua_State* L) {
  push_tensor(L, stats::upper_triangle(tensor_arg(L, 1)));
  return 1;
}

// stats.rsa(a, b, {method = "pearson" | "spearman"})
int s_rsa(lua_State* L) {
  at::Tensor a = tensor_arg(L, 1);
  at::Tensor b = tensor_arg(L, 2);
  check_option_keys(L, 3, {"method"});
  const std::string method = opt_string(L, 3, "method").value_or("pearson");
  if (method != "pearson" && method != "spearman") {
    throw ArgError(3,
                   "option 'method' must be \"pearson\" or \"spearman\", got \"" + method + "\"");
  }
  stats::Rsa r = stats::rsa(a, b,
                            method == "spearman" ? stats::CorrelationMethod::kSpearman
                                                 : stats::CorrelationMethod::kPearson);
  lua_createtable(L, 0, 3);
  set_tensor(L, "r", r.r);
  set_tensor(L, "p", r.p);
  lua_pushinteger(L, static_cast<lua_Integer>(r.pairs));
  lua_setfield(L, -2, "pairs");
  return 1;
}

// stats.selectivity(s, labels)
int s_selectivity(lua_State* L) {
  at::Tensor s = tensor_arg(L, 1);
  stats::Selectivity r = stats::selectivity(s, to_tensor(L, 2));
  lua_createtable(L, 0, 3);
  set_tensor(L, "within", r.within);
  set_tensor(L, "between", r.between);
  set_tensor(L, "ratio", r.ratio);
  return 1;
}

// stats.entropy(x, {bins = 15})
int s_entropy(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  check_option_keys(L, 2, {"bins"});
  push_tensor(L, stats::entropy_binned(x, opt_integer(L, 2, "bins").value_or(15)));
  return 1;
}

// stats.mi_binned(x, y, {bins = 15})
int s_mi_binned(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  at::Tensor y = tensor_arg(L, 2);
  check_option_keys(L, 3, {"bins"});
  push_tensor(L, stats::mutual_information_binned(x, y, opt_integer(L, 3, "bins").value_or(15)));
  return 1;
}

// stats.mi_matrix(x, {bins = 15})
int s_mi_matrix(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  check_option_keys(L, 2, {"bins"});
  push_tensor(L, stats::mutual_information_matrix(x, opt_integer(L, 2, "bins").value_or(15)));
  return 1;
}

// stats.mi_knn(x, y, {k = 3})
int s_mi_knn(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  at::Tensor y = tensor_arg(L, 2);
  check_option_keys(L, 3, {"k"});
  push_tensor(L, stats::mutual_information_knn(x, y, opt_integer(L, 3, "k").value_or(3)));
  return 1;
}

// stats.kendall(x, y) -> {tau, p}
int s_kendall(lua_State* L) {
  at::Tensor x = tensor_arg(L, 1);
  const stats::Kendall k = stats::kendall_tau(x, tensor_arg(L, 2));
  lua_createtable(L, 0, 2);
  lua_pushnumber(L, k.tau);
  lua_setfield(L, -2, "tau");
  lua_pushnumber(L, k.p);
  lua_setfield(L, -2, "p");
  return 1;
}

// ---- RunningStats ----

stats::RunningStats& check_running(lua_State* L, int arg) {
  return check_userdata<stats::RunningStats>(L, arg, kRunningStatsType, "RunningStats");
}

// stats.running({groups = 1})
int s_running(lua_State* L) {
  check_option_keys(L, 1, {"groups"});
  int64_t groups = opt_integer(L, 1, "groups").value_or(1);
  if (groups < 1) throw ArgError(1, "option 'groups' must be at least 1");
  stats::RunningStats running(groups);
  push_userdata<stats::RunningStats>(L, kRunningStatsType, std::move(running));
  return 1;
}

// r:add(batch, group = 0) or r:add(batch, labels)
int running_add(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  at::Tensor batch = tensor_arg(L, 2);
  if (at::Tensor* labels = test_tensor(L, 3)) {
    r.add(batch, *labels);
  } else {
    r.add(batch, integer_or(L, 3, 0));
  }
  lua_settop(L, 1);
  return 1;
}

int running_merge(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  r.merge(check_running(L, 2));
  lua_settop(L, 1);
  return 1;
}

// reducer:merge_across_job() (every streaming reducer): what every rank of the job saw
// (docs/distributed.md); a no-op in one process.
template <class Reducer, Reducer& (*check)(lua_State*, int)>
int merge_across_job(lua_State* L) {
  check(L, 1).merge_across_job();
  lua_settop(L, 1);
  return 1;
}

int running_groups(lua_State* L) {
  lua_pushinteger(L, check_running(L, 1).groups());
  return 1;
}

int running_count(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  lua_pushinteger(L, r.count(integer_or(L, 2, 0)));
  return 1;
}

int running_mean(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  push_tensor(L, r.mean(integer_or(L, 2, 0)));
  return 1;
}

int64_t ddof_option(lua_State* L, int opts) {
  check_option_keys(L, opts, {"ddof"});
  int64_t ddof = opt_integer(L, opts, "ddof").value_or(1);
  if (ddof < 0) throw ArgError(opts, "option 'ddof' must be >= 0");
  return ddof;
}

// r:var(group = 0, {ddof = 1}), r:std(...)
int running_var(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  int64_t group = integer_or(L, 2, 0);
  push_tensor(L, r.var(group, ddof_option(L, 3)));
  return 1;
}

int running_std(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  int64_t group = integer_or(L, 2, 0);
  push_tensor(L, r.std(group, ddof_option(L, 3)));
  return 1;
}

// r:ttest(g1, g2, {equal_var = true})
int running_ttest(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  int64_t g1 = check_integer(L, 2);
  int64_t g2 = check_integer(L, 3);
  check_option_keys(L, 4, {"equal_var"});
  bool equal_var = opt_boolean(L, 4, "equal_var").value_or(true);
  return push_ttest(L, r.ttest_ind(g1, g2, equal_var));
}

// r:ttest_1samp(group = 0, mu = 0)
int running_ttest_1samp(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  int64_t group = integer_or(L, 2, 0);
  return push_ttest(L, r.ttest_1samp(group, number_or(L, 3, 0.0)));
}

int running_tostring(lua_State* L) {
  stats::RunningStats& r = check_running(L, 1);
  std::string text = "RunningStats(" + std::to_string(r.groups()) + " groups, ";
  text += r.started() ? stats::neuron_shape_text(r.neuron_shape()) + " neurons, counts"
                      : "empty, counts";
  for (int64_t g = 0; g < r.groups(); ++g)
    text += (g > 0 ? ", " : " ") + std::to_string(r.count(g));
  text += ")";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

const luaL_Reg kRunningMethods[] = {
    {"add", entry<running_add>},
    {"merge", entry<running_merge>},
    {"merge_across_job", entry<merge_across_job<stats::RunningStats, check_running>>},
    {"groups", entry<running_groups>},
    {"count", entry<running_count>},
    {"mean", entry<running_mean>},
    {"var", entry<running_var>},
    {"std", entry<running_std>},
    {"ttest", entry<running_ttest>},
    {"ttest_1samp", entry<running_ttest_1samp>},
    {nullptr, nullptr},
};

// ---- TopK ----

stats::TopK& check_topk(lua_State* L, int arg) {
  return check_userdata<stats::TopK>(L, arg, kTopKType, "TopK");
}

// stats.topk(k, {neurons = n, largest = true})
int s_topk(lua_State* L) {
  int64_t k = check_integer(L, 1);
  if (k < 1) throw ArgError(1, "k must be at least 1");
  check_option_keys(L, 2, {"neurons", "largest"});
  std::optional<int64_t> neurons = opt_integer(L, 2, "neurons");
  if (neurons && *neurons < 1) throw ArgError(2, "option 'neurons' must be at least 1");
  bool largest = opt_boolean(L, 2, "largest").value_or(true);
  stats::TopK topk(k, neurons, largest);
  push_userdata<stats::TopK>(L, kTopKType, std::move(topk));
  return 1;
}

// t:add(values [docs, pos, n] or [pos, n], doc_offset = t:documents())
int topk_add(lua_State* L) {
  stats::TopK& t = check_topk(L, 1);
  at::Tensor values = tensor_arg(L, 2);
  if (is_none_or_nil(L, 3)) {
    t.add(values);
  } else {
    int64_t offset = check_integer(L, 3);
    if (offset < 0) throw ArgError(3, "document offset must be >= 0");
    t.add(values, offset);
  }
  lua_settop(L, 1);
  return 1;
}

int topk_result(lua_State* L) {
  stats::TopK::Result r = check_topk(L, 1).result();
  lua_createtable(L, 0, 3);
  set_tensor(L, "values", r.values);
  set_tensor(L, "doc", r.doc);
  set_tensor(L, "pos", r.pos);
  return 1;
}

int topk_k(lua_State* L) {
  lua_pushinteger(L, check_topk(L, 1).k());
  return 1;
}

int topk_documents(lua_State* L) {
  lua_pushinteger(L, check_topk(L, 1).documents());
  return 1;
}

int topk_tostring(lua_State* L) {
  stats::TopK& t = check_topk(L, 1);
  std::string text = "TopK(k " + std::to_string(t.k()) + ", " +
                     (t.neurons() ? std::to_string(*t.neurons()) : std::string("?")) +
                     " neurons, " + std::to_string(t.documents()) + " documents)";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

const luaL_Reg kTopKMethods[] = {
    {"add", entry<topk_add>},
    {"result", entry<topk_result>},
    {"k", entry<topk_k>},
    {"documents", entry<topk_documents>},
    {"merge_across_job", entry<merge_across_job<stats::TopK, check_topk>>},
    {nullptr, nullptr},
};

// ---- HistogramStream ----

stats::HistogramStream& check_histogram_stream(lua_State* L, int arg) {
  return check_userdata<stats::HistogramStream>(L, arg, kHistogramStreamType, "HistogramStream");
}

// stats.histogram_stream(edges)
int s_histogram_stream(lua_State* L) {
  stats::HistogramStream stream(tensor_arg(L, 1));
  push_userdata<stats::HistogramStream>(L, kHistogramStreamType, std::move(stream));
  return 1;
}

int histogram_stream_add(lua_State* L) {
  stats::HistogramStream& h = check_histogram_stream(L, 1);
  h.add(tensor_arg(L, 2));
  lua_settop(L, 1);
  return 1;
}

int histogram_stream_counts(lua_State* L) {
  push_tensor(L, check_histogram_stream(L, 1).counts());
  return 1;
}

int histogram_stream_density(lua_State* L) {
  push_tensor(L, check_histogram_stream(L, 1).density());
  return 1;
}

int histogram_stream_edges(lua_State* L) {
  push_tensor(L, check_histogram_stream(L, 1).edges().clone());
  return 1;
}

int histogram_stream_tostring(lua_State* L) {
  stats::HistogramStream& h = check_histogram_stream(L, 1);
  std::string text = "HistogramStream(" + std::to_string(h.edges().size(0) - 1) + " bins)";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

const luaL_Reg kHistogramStreamMethods[] = {
    {"add", entry<histogram_stream_add>},
    {"counts", entry<histogram_stream_counts>},
    {"density", entry<histogram_stream_density>},
    {"edges", entry<histogram_stream_edges>},
    {"merge_across_job", entry<merge_across_job<stats::HistogramStream, check_histogram_stream>>},
    {nullptr, nullptr},
};

// ---- QuantileSketch ----

stats::QuantileSketch& check_sketch(lua_State* L, int arg) {
  return check_userdata<stats::QuantileSketch>(L, arg, kQuantileSketchType, "QuantileSketch");
}

// stats.quantile_sketch({bins = 1024})
int s_quantile_sketch(lua_State* L) {
  check_option_keys(L, 1, {"bins"});
  int64_t bins = opt_integer(L, 1, "bins").value_or(1024);
  if (bins < 2 || bins % 2 != 0) throw ArgError(1, "option 'bins' must be even and at least 2");
  stats::QuantileSketch sketch(bins);
  push_userdata<stats::QuantileSketch>(L, kQuantileSketchType, std::move(sketch));
  return 1;
}

int sketch_add(lua_State* L) {
  stats::QuantileSketch& s = check_sketch(L, 1);
  s.add(tensor_arg(L, 2));
  lua_settop(L, 1);
  return 1;
}

int sketch_quantile(lua_State* L) {
  stats::QuantileSketch& s = check_sketch(L, 1);
  double q = check_number(L, 2);
  if (!(q >= 0 && q <= 1)) throw ArgError(2, "quantile must be in [0, 1]");
  push_tensor(L, s.quantile(q));
  return 1;
}

int sketch_median(lua_State* L) {
  push_tensor(L, check_sketch(L, 1).median());
  return 1;
}

int sketch_error_bound(lua_State* L) {
  push_tensor(L, check_sketch(L, 1).error_bound());
  return 1;
}

int sketch_min(lua_State* L) {
  push_tensor(L, check_sketch(L, 1).min());
  return 1;
}

int sketch_max(lua_State* L) {
  push_tensor(L, check_sketch(L, 1).max());
  return 1;
}

int sketch_count(lua_State* L) {
  lua_pushinteger(L, check_sketch(L, 1).count());
  return 1;
}

int sketch_tostring(lua_State* L) {
  stats::QuantileSketch& s = check_sketch(L, 1);
  std::string text = "QuantileSketch(" + std::to_string(s.bins()) + " bins, " +
                     std::to_string(s.count()) + " samples)";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

const luaL_Reg kSketchMethods[] = {
    {"add", entry<sketch_add>},
    {"quantile", entry<sketch_quantile>},
    {"median", entry<sketch_median>},
    {"error_bound", entry<sketch_error_bound>},
    {"min", entry<sketch_min>},
    {"max", entry<sketch_max>},
    {"count", entry<sketch_count>},
    {"merge_across_job", entry<merge_across_job<stats::QuantileSketch, check_sketch>>},
    {nullptr, nullptr},
};

// ---- CovarianceStream ----

stats::CovarianceStream& check_covariance(lua_State* L, int arg) {
  return check_userdata<stats::CovarianceStream>(L, arg, kCovarianceStreamType, "CovarianceStream");
}

// stats.covariance_stream()
int s_covariance_stream(lua_State* L) {
  push_userdata<stats::CovarianceStream>(L, kCovarianceStreamType, stats::CovarianceStream());
  return 1;
}

int covariance_add(lua_State* L) {
  check_covariance(L, 1).add(tensor_arg(L, 2));
  lua_settop(L, 1);
  return 1;
}

int covariance_merge(lua_State* L) {
  check_covariance(L, 1).merge(check_covariance(L, 2));
  lua_settop(L, 1);
  return 1;
}

int covariance_count(lua_State* L) {
  lua_pushinteger(L, check_covariance(L, 1).count());
  return 1;
}

int covariance_mean(lua_State* L) {
  push_tensor(L, check_covariance(L, 1).mean());
  return 1;
}

// s:covariance(ddof = 1)
int covariance_matrix(lua_State* L) {
  const int64_t ddof = is_none_or_nil(L, 2) ? 1 : check_integer(L, 2);
  if (ddof < 0) throw ArgError(2, "ddof must be >= 0");
  push_tensor(L, check_covariance(L, 1).covariance(ddof));
  return 1;
}

int covariance_explained_variance(lua_State* L) {
  push_tensor(L, check_covariance(L, 1).explained_variance());
  return 1;
}

int covariance_explained_variance_ratio(lua_State* L) {
  push_tensor(L, check_covariance(L, 1).explained_variance_ratio());
  return 1;
}

int covariance_tostring(lua_State* L) {
  stats::CovarianceStream& s = check_covariance(L, 1);
  std::string text = "CovarianceStream(" + std::to_string(s.neurons()) + " neurons, " +
                     std::to_string(s.count()) + " samples)";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

const luaL_Reg kCovarianceMethods[] = {
    {"add", entry<covariance_add>},
    {"merge", entry<covariance_merge>},
    {"merge_across_job", entry<merge_across_job<stats::CovarianceStream, check_covariance>>},
    {"count", entry<covariance_count>},
    {"mean", entry<covariance_mean>},
    {"covariance", entry<covariance_matrix>},
    {"explained_variance", entry<covariance_explained_variance>},
    {"explained_variance_ratio", entry<covariance_explained_variance_ratio>},
    {nullptr, nullptr},
};

void register_type(lua_State* L, const char* type, const luaL_Reg* methods, lua_CFunction gc,
                   lua_CFunction tostring) {
  new_type(L, type, methods, gc);
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

}  // namespace

void open_stats(lua_State* L) {
  register_type(L, kRunningStatsType, kRunningMethods, destroy_userdata<stats::RunningStats>,
                entry<running_tostring>);
  register_type(L, kTopKType, kTopKMethods, destroy_userdata<stats::TopK>, entry<topk_tostring>);
  register_type(L, kHistogramStreamType, kHistogramStreamMethods,
                destroy_userdata<stats::HistogramStream>, entry<histogram_stream_tostring>);
  register_type(L, kQuantileSketchType, kSketchMethods, destroy_userdata<stats::QuantileSketch>,
                entry<sketch_tostring>);
  register_type(L, kCovarianceStreamType, kCovarianceMethods,
                destroy_userdata<stats::CovarianceStream>, entry<covariance_tostring>);
  const luaL_Reg functions[] = {
      {"ttest_ind", entry<s_ttest_ind>},
      {"ttest_rel", entry<s_ttest_rel>},
      {"ttest_1samp", entry<s_ttest_1samp>},
      {"fdr", entry<s_fdr>},
      {"bonferroni", entry<s_bonferroni>},
      {"logit", entry<s_logit>},
      {"pearson", entry<s_pearson>},
      {"histogram", entry<s_histogram>},
      {"pca", entry<s_pca>},
      {"cosine_matrix", entry<s_cosine_matrix>},
      {"correlation_matrix", entry<s_correlation_matrix>},
      {"rank", entry<s_rank>},
      {"spearman", entry<s_spearman>},
      {"correlation_p", entry<s_correlation_p>},
      {"upper_triangle", entry<s_upper_triangle>},
      {"rsa", entry<s_rsa>},
      {"selectivity", entry<s_selectivity>},
      {"entropy", entry<s_entropy>},
      {"mi_binned", entry<s_mi_binned>},
      {"mi_matrix", entry<s_mi_matrix>},
      {"mi_knn", entry<s_mi_knn>},
      {"kendall", entry<s_kendall>},
      {"running", entry<s_running>},
      {"topk", entry<s_topk>},
      {"histogram_stream", entry<s_histogram_stream>},
      {"quantile_sketch", entry<s_quantile_sketch>},
      {"covariance_stream", entry<s_covariance_stream>},
      {nullptr, nullptr},
  };
  luaL_newlib(L, functions);
  lua_setglobal(L, "stats");
}

}  // namespace llmscope::lua
