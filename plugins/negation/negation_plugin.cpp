// negation: negation tuning by logistic regression (course lessons 12-20 to 12-23). Labels the
// negations and affirmations of a token stream by the course's rules, cuts windows of context
// around them, and fits label ~ 1 + activation at the target position for every unit of every
// layer (stats::logit, batched Newton), from activations gathered inside native hooks at that
// one position, so full activations never leave the forward pass. In a job of several ranks
// (llmscope/job.hpp) each rank runs its share of the windows' batches and fits its share of
// the units, and every rank ends with the whole result.
#include <llmscope/job.hpp>
#include <llmscope/plugin.hpp>
#include <llmscope/stats.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// ---- the labelling rule ----

// The course's rules (part5_neurons_CCclassifyNegationsMLP), every list an option.
struct Rules {
  std::set<std::string> negations{"not", "cannot", "nor", "never"};
  std::vector<std::string> contains{"'t", "n't"};
  std::set<std::string> affirmations{"agree",      "always", "allow", "can",   "certainly", "could",
                                     "definitely", "may",    "might", "shall", "should"};
  std::string excluded_next = " not";  // an affirmation followed by this token is not one
  int64_t context_pre = 90;
  int64_t context_post = 10;
};

const std::vector<std::string> kRuleOptions{"negations",     "contains",    "affirmations",
                                            "excluded_next", "context_pre", "context_post"};

std::set<std::string> as_set(const std::vector<std::string>& words) {
  return {words.begin(), words.end()};
}

Rules rules_from(const Table& opts, int index) {
  Rules r;
  r.negations = as_set(option<std::vector<std::string>>(
      opts, "negations", {r.negations.begin(), r.negations.end()}, index));
  r.contains = option<std::vector<std::string>>(opts, "contains", r.contains, index);
  r.affirmations = as_set(option<std::vector<std::string>>(
      opts, "affirmations", {r.affirmations.begin(), r.affirmations.end()}, index));
  r.excluded_next = option<std::string>(opts, "excluded_next", r.excluded_next, index);
  r.context_pre = option<int64_t>(opts, "context_pre", r.context_pre, index);
  r.context_post = option<int64_t>(opts, "context_post", r.context_post, index);
  if (r.context_pre < 0)
    throw ArgumentError(index,
                        "option 'context_pre' must be >= 0, got " + std::to_string(r.context_pre));
  if (r.context_post < 0) {
    throw ArgumentError(
        index, "option 'context_post' must be >= 0, got " + std::to_string(r.context_post));
  }
  for (const auto& c : r.contains) {
    if (c.empty())
      throw ArgumentError(index,
                          "option 'contains' holds an empty string (it would match every token)");
  }
  return r;
}

// Python's str.strip() (ASCII whitespace) and str.lower() (ASCII letters).
std::string stripped_lower(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  const auto first = s.find_first_not_of(space);
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(space);
  std::string out = s.substr(first, last - first + 1);
  for (auto& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

// What the rule needs to know about one token string.
struct TokenInfo {
  bool negation = false;     // a negation word (before looking at the next token)
  bool affirmation = false;  // an affirmation word
  bool space_led = false;    // starts with ' ': a new word begins here
  bool excluded = false;     // equals `excluded_next` (" not")
};

TokenInfo token_info(const std::string& text, const Rules& rules) {
  TokenInfo info;
  const std::string cur = stripped_lower(text);
  info.negation = rules.negations.count(cur) > 0;
  for (const auto& c : rules.contains)
    info.negation = info.negation || cur.find(c) != std::string::npos;
  info.affirmation = rules.affirmations.count(cur) > 0;
  info.space_led = !text.empty() && text[0] == ' ';
  info.excluded = text == rules.excluded_next;
  return info;
}

struct Labels {
  std::vector<int64_t> negations, affirmations;
};

// The course's loop: ti in [context_pre, n - context_post), and the next token must exist.
Labels apply_rules(const std::vector<TokenInfo>& info, const Rules& rules) {
  Labels out;
  const auto n = static_cast<int64_t>(info.size());
  for (int64_t ti = rules.context_pre; ti < n - rules.context_post && ti + 1 < n; ++ti) {
    const TokenInfo& cur = info[static_cast<size_t>(ti)];
    const TokenInfo& next = info[static_cast<size_t>(ti + 1)];
    if (cur.negation && next.space_led) {
      out.negations.push_back(ti);
    } else if (cur.affirmation && !next.excluded && next.space_led) {
      out.affirmations.push_back(ti);
    }
  }
  return out;
}

bool is_punctuation_only(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    const auto ch = static_cast<unsigned char>(c);
    return ch < 0x80 && std::isalnum(ch) == 0;
  });
}

// A token's surface string in GPT-2's convention (a leading space where a word starts), so one
// rule serves every tokenizer. BPE tokens are their decoded bytes. WordPiece: "##ing" continues
// a word ("ing"), a special token ("[SEP]") or a punctuation-only token (".") attaches, and any
// other token starts a word (" not").
std::string surface(const llmscope::Tokenizer& tokenizer, int64_t id) {
  std::string text = tokenizer.token_text(id);
  if (tokenizer.kind() != "wordpiece") return text;
  if (text.rfind("##", 0) == 0) return text.substr(2);
  if (tokenizer.special_token_id(text) >= 0 || is_punctuation_only(text)) return text;
  return " " + text;
}

at::Tensor positions_tensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong).reshape({static_cast<int64_t>(v.size())});
}

// The labelled tokens by count (most frequent first, then alphabetically).
List counted(const std::vector<int64_t>& positions, const std::vector<std::string>& strings) {
  std::map<std::string, int64_t> counts;
  for (int64_t p : positions) ++counts[stripped_lower(strings[static_cast<size_t>(p)])];
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  List out;
  for (const auto& [token, count] : sorted) {
    Table row;
    row["token"] = token;
    row["count"] = count;
    out.emplace_back(row);
  }
  return out;
}

Table label_strings(const std::vector<std::string>& strings, const Rules& rules) {
  std::vector<TokenInfo> info;
  info.reserve(strings.size());
  for (const auto& s : strings) info.push_back(token_info(s, rules));
  Labels labels = apply_rules(info, rules);
  Table out;
  out["negations"] = positions_tensor(labels.negations);
  out["affirmations"] = positions_tensor(labels.affirmations);
  out["n_tokens"] = static_cast<int64_t>(strings.size());
  out["negation_tokens"] = counted(labels.negations, strings);
  out["affirmation_tokens"] = counted(labels.affirmations, strings);
  return out;
}

// ids as a CPU int64 vector from a [n] or [1, n] integer tensor.
std::vector<int64_t> id_vector(const at::Tensor& ids, int index, const char* what) {
  if (!ids.defined()) throw ArgumentError(index, std::string(what) + " expected");
  if (at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool) {
    throw ArgumentError(index, std::string(what) + " must be an integer tensor, got " +
                                   std::string(at::toString(ids.scalar_type())));
  }
  at::Tensor flat = ids;
  if (flat.dim() == 2 && flat.size(0) == 1) flat = flat.squeeze(0);
  if (flat.dim() != 1) {
    throw ArgumentError(index, std::string(what) +
                                   " must be a 1-D token stream ([n] or [1, n]), got " +
                                   std::to_string(ids.dim()) + " dims");
  }
  flat = flat.to(at::kCPU, at::kLong).contiguous();
  return {flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel()};
}

Table label(const Value& first, const Value& ids_value, const Table& opts) {
  check_options(opts, kRuleOptions, 3);
  Rules rules = rules_from(opts, 3);
  if (std::holds_alternative<List>(first.data)) {
    return label_strings(llmscope::plugin::FromValue<std::vector<std::string>>::get(first, 1),
                         rules);
  }
  if (const auto* table = std::get_if<Table>(&first.data); table && table->empty())
    return label_strings({}, rules);
  const auto* model = std::get_if<ModelPtr>(&first.data);
  if (!model) {
    throw ArgumentError(1, "model or list of token strings expected, got " + first.type_name());
  }
  const llmscope::Tokenizer* tokenizer = (*model)->tokenizer();
  if (!tokenizer) {
    throw ArgumentError(
        1,
        "the model has no tokenizer to decode tokens with (pass a list of token strings instead)");
  }
  const auto* ids_tensor = std::get_if<at::Tensor>(&ids_value.data);
  if (!ids_tensor)
    throw ArgumentError(2, "tensor of token ids expected, got " + ids_value.type_name());
  std::vector<int64_t> ids = id_vector(*ids_tensor, 2, "token ids");
  // Each vocabulary entry is decoded once, however often it occurs.
  std::unordered_map<int64_t, std::string> cache;
  std::vector<std::string> strings;
  strings.reserve(ids.size());
  for (int64_t id : ids) {
    auto it = cache.find(id);
    if (it == cache.end()) {
      if (id < 0 || id >= tokenizer->vocab_size()) {
        throw ArgumentError(2, "token id " + std::to_string(id) +
                                   " is outside the tokenizer's vocabulary of " +
                                   std::to_string(tokenizer->vocab_size()));
      }
      it = cache.emplace(id, surface(*tokenizer, id)).first;
    }
    strings.push_back(it->second);
  }
  return label_strings(strings, rules);
}

// ---- windows ----

at::Tensor windows(const at::Tensor& ids, const Value& positions_value, const Table& opts) {
  check_options(opts, {"context_pre", "context_post", "max"}, 3);
  const int64_t pre = option<int64_t>(opts, "context_pre", 90, 3);
  const int64_t post = option<int64_t>(opts, "context_post", 10, 3);
  const int64_t max = option<int64_t>(opts, "max", -1, 3);
  if (pre < 0)
    throw ArgumentError(3, "option 'context_pre' must be >= 0, got " + std::to_string(pre));
  if (post < 0)
    throw ArgumentError(3, "option 'context_post' must be >= 0, got " + std::to_string(post));
  std::vector<int64_t> stream = id_vector(ids, 1, "token ids");
  std::vector<int64_t> positions;
  if (const auto* t = std::get_if<at::Tensor>(&positions_value.data)) {
    if (t->dim() > 1) throw ArgumentError(2, "positions must be a 1-D tensor or a list");
    if (t->numel() > 0) positions = id_vector(t->reshape({-1}), 2, "positions");
  } else {
    positions = llmscope::plugin::FromValue<std::vector<int64_t>>::get(positions_value, 2);
  }
  // At most `max` positions, spread evenly over the list so that a long text is sampled from
  // end to end rather than only from its beginning.
  const auto count = static_cast<int64_t>(positions.size());
  if (max >= 0 && count > max) {
    std::vector<int64_t> kept(static_cast<size_t>(max));
    for (int64_t i = 0; i < max; ++i)
      kept[static_cast<size_t>(i)] = positions[static_cast<size_t>(i * count / max)];
    positions = std::move(kept);
  }
  const auto n = static_cast<int64_t>(stream.size());
  for (int64_t p : positions) {
    if (p - pre < 0 || p + post >= n) {
      throw ArgumentError(2, "position " + std::to_string(p) + " has no room for " +
                                 std::to_string(pre) + " tokens before and " +
                                 std::to_string(post) + " after it in a stream of " +
                                 std::to_string(n) + " tokens");
    }
  }
  const int64_t width = pre + 1 + post;
  at::Tensor out =
      at::empty({static_cast<int64_t>(positions.size()), width}, at::kLong);  // [n, pre + 1 + post]
  auto* dst = out.data_ptr<int64_t>();
  for (size_t i = 0; i < positions.size(); ++i) {
    std::copy_n(stream.begin() + (positions[i] - pre), width,
                dst + static_cast<int64_t>(i) * width);
  }
  return out.to(ids.device());
}

// ---- sites ----

// Where a scan reads its units: the MLP before its nonlinearity, the attention's Q, K and V
// (reported separately, in that order, but corrected together as the course's c_attn hook
// saw them), or any [batch, pos, ...] hook point named with {L} for the layer.
struct Site {
  std::string name;                    // "mlp", "qkv" or the template
  std::vector<std::string> parts;      // result keys, in column order
  std::vector<std::string> templates;  // one hook point per part
};

Site site_from(const std::string& name, int index) {
  if (name == "mlp") return {name, {"mlp"}, {"blocks.{L}.mlp.hook_pre"}};
  if (name == "qkv") {
    return {name,
            {"q", "k", "v"},
            {"blocks.{L}.attn.hook_q", "blocks.{L}.attn.hook_k", "blocks.{L}.attn.hook_v"}};
  }
  if (name.find("{L}") == std::string::npos) {
    throw ArgumentError(
        index,
        "option 'site' must be 'mlp', 'qkv' or a hook point name with {L} for the layer "
        "(e.g. 'blocks.{L}.mlp.hook_post'), got '" +
            name + "'");
  }
  return {name, {"units"}, {name}};
}

// Checks a windows argument and returns it as int64 on the model's device.
at::Tensor checked_windows(const ModelPtr& model, const at::Tensor& w, int index,
                           const char* what) {
  if (!w.defined()) throw ArgumentError(index, std::string(what) + " expected");
  if (w.dim() != 2) {
    throw ArgumentError(index, std::string(what) + " must be [windows, tokens], got " +
                                   std::to_string(w.dim()) + " dims");
  }
  if (at::isFloatingType(w.scalar_type()) || w.scalar_type() == at::kBool) {
    throw ArgumentError(index, std::string(what) + " must hold integer token ids");
  }
  if (w.numel() > 0) {
    const int64_t lo = w.min().item<int64_t>();
    const int64_t hi = w.max().item<int64_t>();
    if (lo < 0 || hi >= model->vocab_size()) {
      throw ArgumentError(
          index, std::string(what) + " hold token id " + std::to_string(lo < 0 ? lo : hi) +
                     ", outside the model's vocabulary of " + std::to_string(model->vocab_size()));
    }
  }
  return w.to(model->device(), at::kLong);
}

// Resolves each hook point now, so a typo fails before the first forward pass.
void check_site_names(const ModelPtr& model, const Site& site, int64_t layer, int index) {
  for (const auto& t : site.templates) site_at(*model, t, layer, index, "option 'site'");
}

// The template at a layer (checked by check_site_names before any pass).
std::string at_layer(const ModelPtr& model, const std::string& pattern, int64_t layer) {
  return site_at(*model, pattern, layer, 0, "option 'site'").name;
}

// Runs `rows` [n, T] through the model in batches with one native hook per (layer, part); each
// hook gets the batch's activation and the first row of the batch.
using Gather = std::function<void(size_t hook, const at::Tensor& act, int64_t row0)>;

double forward_batches(const ModelPtr& model, const at::Tensor& rows,
                       const std::vector<std::string>& names, const Gather& gather,
                       int64_t batch_size, std::optional<int> stop_at_layer) {
  const auto start = std::chrono::steady_clock::now();
  int64_t row0 = 0;
  llmscope::ForwardOptions forward;
  forward.strict_hooks = true;
  forward.stop_at_layer = stop_at_layer;
  for (size_t h = 0; h < names.size(); ++h) {
    forward.hooks.push_back(
        {names[h], [&gather, &row0, h](const at::Tensor& act, const llmscope::HookContext&) {
           gather(h, act, row0);
           return at::Tensor();
         }});
  }
  at::NoGradGuard no_grad;
  for_each_range(rows.size(0), batch_size, [&](int64_t start, int64_t stop) {
    row0 = start;
    model->forward(llmscope::ForwardInput{rows.narrow(0, start, stop - start), {}, {}, {}},
                   forward);
  });
  // On an accelerator the copies above are queued; wait for them so the time is the passes'.
  if (!model->device().is_cpu()) {
    (void)at::zeros({1}, at::TensorOptions().device(model->device())).item<float>();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- scan ----

// The per-layer results of one part (mlp, or q, k, v), rows in the order of `layers`.
struct PartResult {
  std::vector<at::Tensor> beta, intercept, p, accuracy, significant, separated, converged, best_x;
};

at::Tensor nanmean_rows(const at::Tensor& x, const at::Tensor& keep) {  // [l, n] -> [l]
  at::Tensor use = keep & x.isnan().logical_not();
  at::Tensor count = use.sum(1).to(at::kDouble);
  at::Tensor sum = at::where(use, x, at::zeros({}, x.options())).sum(1);
  return at::where(count > 0, sum / count, at::full({}, kNan, sum.options()));
}

Table part_table(const PartResult& r) {
  Table t;
  // [layers, units] each
  at::Tensor beta = at::stack(r.beta);
  at::Tensor p = at::stack(r.p);
  at::Tensor accuracy = at::stack(r.accuracy);
  at::Tensor sig = at::stack(r.significant);
  at::Tensor sig_pos = sig & (beta > 0);
  const int64_t units = beta.size(1);
  t["beta"] = beta;
  t["intercept"] = at::stack(r.intercept);
  t["p"] = p;
  t["accuracy"] = accuracy;
  t["significant"] = sig;
  t["separated"] = at::stack(r.separated);
  t["converged"] = at::stack(r.converged);
  t["n_significant"] = sig.sum(1);
  t["pct_significant"] = sig.sum(1).to(at::kDouble) * (100.0 / static_cast<double>(units));
  t["n_significant_positive"] = sig_pos.sum(1);
  t["mean_accuracy"] = nanmean_rows(accuracy, at::ones_like(sig));
  t["mean_accuracy_sig_pos"] = nanmean_rows(accuracy, sig_pos);
  // The best unit: the largest significant positive beta (the course's maxBetaNeuron).
  at::Tensor masked = at::where(
      sig_pos, beta, at::full({}, -std::numeric_limits<double>::infinity(), beta.options()));
  at::Tensor best = masked.argmax(1);
  at::Tensor any = sig_pos.any(1);
  at::Tensor best_unit = at::where(any, best, at::full({}, -1, best.options()));
  auto pick = [&](const at::Tensor& x) {
    return at::where(any, x.gather(1, best.unsqueeze(1)).squeeze(1),
                     at::full({}, kNan, x.options()));
  };
  t["best_unit"] = best_unit;
  t["best_beta"] = pick(beta);
  t["best_p"] = pick(p);
  t["best_accuracy"] = pick(accuracy);
  t["best_activations"] = at::stack(r.best_x);
  return t;
}

// stats::logit of every unit of x [N, units]; in a job each rank fits its share of the units and
// every rank gets all the fits (a unit's fit does not depend on the others).
llmscope::stats::LogitResult fit_units(const at::Tensor& x, const at::Tensor& y,
                                       const llmscope::stats::LogitOptions& options) {
  if (llmscope::job::world_size() == 1) return llmscope::stats::logit(x, y, options);
  const std::pair<int64_t, int64_t> mine = llmscope::job::shard_range(x.size(1));
  llmscope::stats::LogitResult part;
  if (mine.second > mine.first)
    part = llmscope::stats::logit(x.narrow(1, mine.first, mine.second - mine.first), y, options);
  auto whole = [&x](const at::Tensor& t, int64_t dim) {
    return llmscope::job::all_gather_concat(t, dim).to(x.device());
  };
  llmscope::stats::LogitResult r;
  r.coef = whole(part.coef, 1);
  r.se = whole(part.se, 1);
  r.p = whole(part.p, 1);
  r.accuracy = whole(part.accuracy, 0);
  r.converged = whole(part.converged, 0);
  r.separated = whole(part.separated, 0);
  r.iterations = whole(part.iterations, 0);
  r.llf = whole(part.llf, 0);
  r.prsquared = whole(part.prsquared, 0);
  r.llr_p = whole(part.llr_p, 0);
  // The same on every rank that fitted (it depends on y alone).
  const double own =
      mine.second > mine.first ? part.llnull : -std::numeric_limits<double>::infinity();
  r.llnull = llmscope::job::all_gather(at::full({1}, own, at::kDouble)).max().item<double>();
  return r;
}

Table scan(const ModelPtr& model, const at::Tensor& neg_in, const at::Tensor& aff_in,
           const Table& opts) {
  check_options(
      opts, {"site", "layers", "target", "batch_size", "max_iter", "tol", "alpha", "pass_layers"},
      4);
  const Site site = site_from(option<std::string>(opts, "site", "mlp", 4), 4);
  const std::vector<int64_t> layers = layers_option(*model, opts, "layers", 4);
  for (int64_t l : layers) check_site_names(model, site, l, 4);
  const int64_t batch_size = batch_size_option(opts, 32, 4);
  llmscope::stats::LogitOptions fit_options;
  fit_options.max_iter = option<int64_t>(opts, "max_iter", 3000, 4);
  fit_options.tol = option<double>(opts, "tol", 1e-8, 4);
  if (fit_options.max_iter < 1) {
    throw ArgumentError(
        4, "option 'max_iter' must be >= 1, got " + std::to_string(fit_options.max_iter));
  }
  if (!(fit_options.tol > 0)) throw ArgumentError(4, "option 'tol' must be > 0");
  const double alpha = option<double>(opts, "alpha", 0.05, 4);
  if (!(alpha > 0 && alpha < 1))
    throw ArgumentError(4, "option 'alpha' must be in (0, 1), got " + std::to_string(alpha));
  const auto n_layers = static_cast<int64_t>(layers.size());
  const int64_t pass_layers = option<int64_t>(opts, "pass_layers", n_layers, 4);
  if (pass_layers < 1)
    throw ArgumentError(4, "option 'pass_layers' must be >= 1, got " + std::to_string(pass_layers));

  at::Tensor neg = checked_windows(model, neg_in, 2, "negation windows");
  at::Tensor aff = checked_windows(model, aff_in, 3, "affirmation windows");
  if (neg.size(1) != aff.size(1)) {
    throw ArgumentError(3, "affirmation windows have " + std::to_string(aff.size(1)) +
                               " tokens but negation windows have " + std::to_string(neg.size(1)));
  }
  if (neg.size(0) < 2)
    throw ArgumentError(2,
                        "at least 2 negation windows needed, got " + std::to_string(neg.size(0)));
  if (aff.size(0) < 2)
    throw ArgumentError(
        3, "at least 2 affirmation windows needed, got " + std::to_string(aff.size(0)));
  const int64_t width = neg.size(1);
  const int64_t target = option<int64_t>(opts, "target", std::min<int64_t>(90, width - 1), 4);
  if (target < 0 || target >= width) {
    throw ArgumentError(4, "option 'target': " + std::to_string(target) +
                               " is outside windows of " + std::to_string(width) + " tokens");
  }
  // A causal model's activation at the target sees no later token: those are not run.
  const int64_t run_width = model->is_causal() ? target + 1 : width;
  if (run_width > model->max_positions()) {
    throw ArgumentError(2, "windows of " + std::to_string(run_width) +
                               " tokens are longer than the model's " +
                               std::to_string(model->max_positions()) + " positions");
  }

  // Rows as the course stacks them: affirmations (label 0), then negations (label 1).
  at::Tensor rows = at::cat({aff, neg}, 0).narrow(1, 0, run_width).contiguous();  // [N, run_width]
  const int64_t n = rows.size(0);
  auto fopts = at::TensorOptions().dtype(at::kDouble).device(model->device());
  at::Tensor y = at::cat({at::zeros({aff.size(0)}, fopts), at::ones({neg.size(0)}, fopts)});  // [N]

  // This rank's rows: whole batches of the one-process plan, so each pass is one a single
  // process runs too (the same float32 rounding). All of them outside a job.
  const std::pair<int64_t, int64_t> mine = llmscope::job::shard_batches(n, batch_size);
  const at::Tensor my_rows = rows.narrow(0, mine.first, mine.second - mine.first);

  const size_t n_parts = site.parts.size();
  std::vector<PartResult> results(n_parts);
  std::vector<int64_t> part_units(n_parts, -1);
  double forward_s = 0;
  double fit_s = 0;
  int64_t tokens = 0;

  for (int64_t g0 = 0; g0 < n_layers; g0 += pass_layers) {
    const int64_t g1 = std::min(n_layers, g0 + pass_layers);
    // buffers[(layer - g0) * n_parts + part]: [N, units] target-position activations
    std::vector<at::Tensor> buffers(static_cast<size_t>(g1 - g0) * n_parts);
    std::vector<std::string> names;
    int64_t deepest = 0;
    for (int64_t i = g0; i < g1; ++i) {
      deepest = std::max(deepest, layers[static_cast<size_t>(i)]);
      for (const auto& t : site.templates)
        names.push_back(at_layer(model, t, layers[static_cast<size_t>(i)]));
    }
    Gather gather = [&](size_t h, const at::Tensor& act, int64_t row0) {
      if (act.dim() < 3 || act.size(1) != run_width) {
        throw llmscope::Error("negation scan: site '" + names[h] +
                              "' is not [batch, pos, ...] (got " + std::to_string(act.dim()) +
                              " dims)");
      }
      at::Tensor x = act.select(1, target).reshape({act.size(0), -1});  // [batch, units]
      at::Tensor& buffer = buffers[h];
      if (!buffer.defined()) buffer = at::empty({my_rows.size(0), x.size(1)}, x.options());
      buffer.narrow(0, row0, x.size(0)).copy_(x);
    };
    // Blocks after the deepest hooked layer, and the unembedding, are not run.
    const std::optional<int> stop = static_cast<int>(deepest) + 1;
    forward_s += forward_batches(model, my_rows, names, gather, batch_size, stop);
    tokens += n * run_width;
    // Every rank gets every row (in a job; a no-op in one process).
    if (llmscope::job::world_size() > 1) {
      for (auto& buffer : buffers)
        buffer = llmscope::job::all_gather_concat(buffer).to(model->device());
    }

    const auto fit_start = std::chrono::steady_clock::now();
    for (int64_t i = g0; i < g1; ++i) {
      std::vector<at::Tensor> columns;
      for (size_t k = 0; k < n_parts; ++k) {
        at::Tensor& b = buffers[static_cast<size_t>(i - g0) * n_parts + k];
        if (part_units[k] < 0) part_units[k] = b.size(1);
        if (b.size(1) != part_units[k])
          throw llmscope::Error("negation scan: layers differ in width at " + names[k]);
        columns.push_back(b);
      }
      at::Tensor x = n_parts == 1 ? columns[0] : at::cat(columns, 1);  // [N, units of all parts]
      for (size_t k = 0; k < n_parts; ++k)
        buffers[static_cast<size_t>(i - g0) * n_parts + k] = at::Tensor();
      llmscope::stats::LogitResult fit = fit_units(x, y, fit_options);
      // Bonferroni as the course applies it: p < alpha / (units the layer tested).
      at::Tensor p = fit.p[1];
      at::Tensor sig = p < alpha / static_cast<double>(x.size(1));  // nan compares false
      int64_t col = 0;
      for (size_t k = 0; k < n_parts; ++k) {
        const int64_t u = part_units[k];
        PartResult& r = results[k];
        auto part = [&](const at::Tensor& t) { return t.narrow(-1, col, u).cpu(); };
        r.beta.push_back(part(fit.coef[1]));
        r.intercept.push_back(part(fit.coef[0]));
        r.p.push_back(part(p));
        r.accuracy.push_back(part(fit.accuracy));
        r.significant.push_back(part(sig));
        r.separated.push_back(part(fit.separated));
        r.converged.push_back(part(fit.converged));
        // The target activations of this part's best unit, for the predicted-probability plot.
        const at::Tensor& beta = r.beta.back();
        at::Tensor keep = r.significant.back() & (beta > 0);
        if (keep.any().item<bool>()) {
          const int64_t best =
              at::where(keep, beta,
                        at::full({}, -std::numeric_limits<double>::infinity(), beta.options()))
                  .argmax()
                  .item<int64_t>();
          r.best_x.push_back(x.select(1, col + best).to(at::kCPU, at::kDouble));
        } else {
          r.best_x.push_back(at::full({n}, kNan, at::kDouble));
        }
        col += u;
      }
    }
    fit_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_start).count();
  }

  Table out;
  out["site"] = site.name;
  List parts;
  for (const auto& p : site.parts) parts.emplace_back(p);
  out["parts"] = parts;
  out["layers"] = layers;
  out["target"] = target;
  out["n_negations"] = neg.size(0);
  out["n_affirmations"] = aff.size(0);
  int64_t tested = 0;
  for (int64_t u : part_units) tested += u;
  out["units"] = part_units[0];
  out["tested_units"] = tested;
  out["alpha"] = alpha;
  out["threshold"] = alpha / static_cast<double>(tested);
  out["labels"] = y.cpu();
  for (size_t k = 0; k < n_parts; ++k) out[site.parts[k]] = part_table(results[k]);
  Table timing;
  timing["forward_s"] = forward_s;
  timing["fit_s"] = fit_s;
  timing["tokens"] = tokens;
  timing["tokens_per_s"] = forward_s > 0 ? static_cast<double>(tokens) / forward_s : kNan;
  timing["fits"] = n_layers * tested;
  out["timing"] = timing;
  return out;
}

// ---- trace ----

at::Tensor trace(const ModelPtr& model, const at::Tensor& w_in, const Table& opts) {
  check_options(opts, {"site", "layer", "unit", "batch_size"}, 3);
  const Site site = site_from(option<std::string>(opts, "site", "mlp", 3), 3);
  const int64_t layer = layer_option(*model, opts, "layer", 0, 3);
  check_site_names(model, site, layer, 3);
  const auto unit = option<std::optional<int64_t>>(opts, "unit", std::nullopt, 3);
  if (!unit) throw ArgumentError(3, "option 'unit' is required");
  if (*unit < 0) throw ArgumentError(3, "option 'unit' must be >= 0, got " + std::to_string(*unit));
  const int64_t batch_size = batch_size_option(opts, 32, 3);
  at::Tensor rows = checked_windows(model, w_in, 2, "windows");
  if (rows.size(1) > model->max_positions()) {
    throw ArgumentError(2, "windows of " + std::to_string(rows.size(1)) +
                               " tokens are longer than the model's " +
                               std::to_string(model->max_positions()) + " positions");
  }
  at::Tensor out = at::empty({rows.size(0), rows.size(1)}, at::kFloat);  // [windows, tokens]
  std::vector<std::string> names;
  for (const auto& t : site.templates) names.push_back(at_layer(model, t, layer));
  std::vector<int64_t> widths(names.size(), -1);
  bool found = false;
  Gather gather = [&](size_t h, const at::Tensor& act, int64_t row0) {
    at::Tensor x = act.reshape({act.size(0), act.size(1), -1});  // [batch, pos, units]
    widths[h] = x.size(2);
    int64_t before = 0;  // units of the parts before this one (Q | K | V)
    for (size_t k = 0; k < h; ++k) before += widths[k];
    if (*unit >= before && *unit < before + x.size(2)) {
      out.narrow(0, row0, x.size(0)).copy_(x.select(2, *unit - before));
      found = true;
    }
  };
  if (rows.size(0) > 0)
    forward_batches(model, rows, names, gather, batch_size, static_cast<int>(layer) + 1);
  if (rows.size(0) > 0 && !found) {
    int64_t total = 0;
    for (int64_t w : widths) total += w;
    throw ArgumentError(3, "option 'unit': " + std::to_string(*unit) + " is not a unit of site '" +
                               site.name + "' (" + std::to_string(total) + " units)");
  }
  return out;
}

}  // namespace

LLMSCOPE_PLUGIN("negation", "0.1.0",
                "Negation tuning: label negations/affirmations, fit label ~ activation per unit") {
  module.def("label",
             "label(model | tokens, ids, opts) -> {negations, affirmations, n_tokens, "
             "negation_tokens, affirmation_tokens}\n"
             "Labels positions of a 1-D token stream by the course's rules. With a model, `ids` "
             "([n] or [1, n]) are\n"
             "decoded by its tokenizer; with a list of token strings, those are used (ids is "
             "ignored). A token is a\n"
             "negation when its stripped, lowercased text is in `negations` or contains one of "
             "`contains`, and the\n"
             "next token starts with a space; an affirmation when it is in `affirmations`, the "
             "next token is not\n"
             "`excluded_next` and starts with a space. Only positions ti in [context_pre, n - "
             "context_post) count.\n"
             "WordPiece tokens are read in GPT-2's convention (' word', '##ing' -> 'ing').\n"
             "opts: negations ({'not','cannot','nor','never'}), contains ({\"'t\",\"n't\"}), "
             "affirmations ({'agree',\n"
             "'always','allow','can','certainly','could','definitely','may','might','shall','"
             "should'}), excluded_next\n"
             "(' not'), context_pre (90), context_post (10).\n"
             "Returns int64 tensors of 0-based positions, the stream length, and {token, count} "
             "lists, most frequent first.",
             [](const Value& first, const Value& ids, const Table& opts) {
               return label(first, ids, opts);
             });

  module.def(
      "classify",
      "classify(tokens, opts) -> label's result for a list of token strings (the pure rule, no "
      "model)\n"
      "tokens: {'I', ' do', ' not', ' know'}; opts as for label (context_pre 90, context_post 10 "
      "by default).",
      [](const Value& tokens, const Table& opts) {
        if (!std::holds_alternative<List>(tokens.data) &&
            !(std::holds_alternative<Table>(tokens.data) && std::get<Table>(tokens.data).empty())) {
          throw ArgumentError(1, "list of token strings expected, got " + tokens.type_name());
        }
        check_options(opts, kRuleOptions, 2);
        return label_strings(llmscope::plugin::FromValue<std::vector<std::string>>::get(tokens, 1),
                             rules_from(opts, 2));
      });

  module.def("windows",
             "windows(ids, positions, opts) -> [n, context_pre + 1 + context_post] int64\n"
             "The tokens around each position (a tensor or list): ids[p - context_pre .. p + "
             "context_post], so the\n"
             "target sits at index context_pre. opts: context_pre (90), context_post (10), max "
             "(keep at most max\n"
             "positions, spread evenly: positions[floor(i * n / max)]; default all). A position "
             "without room on\n"
             "either side is an error.",
             [](const at::Tensor& ids, const Value& positions, const Table& opts) {
               return windows(ids, positions, opts);
             });

  module.def(
      "scan",
      "scan(model, neg_windows, aff_windows, opts) -> per-part results over layers\n"
      "For each layer and unit, fits label ~ 1 + activation at the target index by logistic "
      "regression\n"
      "(stats.logit, batched Newton over all units of a layer; label 1 = negation, rows "
      "affirmations first).\n"
      "Activations are gathered inside native hooks at the target position only.\n"
      "opts: site ('mlp' = blocks.{L}.mlp.hook_pre, default; 'qkv' = blocks.{L}.attn.hook_q/k/v, "
      "reported as\n"
      "q, k, v in that order and Bonferroni-corrected together over 3 x d_model units as the "
      "course's c_attn\n"
      "hook; or any [batch, pos, ...] hook point with {L}), layers (0-based list, default all), "
      "target (index\n"
      "in the window, default 90), batch_size (32), max_iter (3000), tol (1e-8), alpha (0.05), "
      "pass_layers\n"
      "(layers gathered per sweep over the windows, default all; fewer saves memory).\n"
      "Returns {site, parts, layers, target, n_negations, n_affirmations, units, tested_units, "
      "alpha, threshold,\n"
      "labels, timing = {forward_s, fit_s, tokens, tokens_per_s, fits}, [part] = {beta, intercept, "
      "p, accuracy,\n"
      "significant, separated, converged ([layers, units]); n_significant, pct_significant,\n"
      "n_significant_positive, mean_accuracy, mean_accuracy_sig_pos, best_unit (-1 if none), "
      "best_beta,\n"
      "best_p, best_accuracy ([layers]); best_activations ([layers, windows])}}. significant: p < "
      "alpha /\n"
      "tested_units. Separated units (no MLE) have nan beta and p and are never significant.",
      [](const ModelPtr& model, const at::Tensor& neg, const at::Tensor& aff, const Table& opts) {
        return scan(model, neg, aff, opts);
      });

  module.def("trace",
             "trace(model, windows, opts) -> [windows, tokens] float32: one unit's activation at "
             "every position\n"
             "opts: layer (0-based, default 0), unit (required; for site 'qkv' an index into Q | K "
             "| V), site ('mlp',\n"
             "'qkv' or a hook point with {L}, as in scan), batch_size (32). For token heatmaps of "
             "the best unit.",
             [](const ModelPtr& model, const at::Tensor& w, const Table& opts) {
               return trace(model, w, opts);
             });
}
