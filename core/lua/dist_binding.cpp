// The `dist` module: the job this process belongs to (llmscope/distributed.hpp). With one
// process every call is a no-op that returns its input, so a script runs unchanged without a job.
#include "binding.hpp"
#include "llmscope/distributed.hpp"
#include "llmscope/job.hpp"

namespace llmscope::lua {
namespace {

int dist_rank(lua_State* L) {
  lua_pushinteger(L, job::rank());
  return 1;
}

int dist_world_size(lua_State* L) {
  lua_pushinteger(L, job::world_size());
  return 1;
}

int dist_is_main(lua_State* L) {
  lua_pushboolean(L, job::is_main());
  return 1;
}

// dist.shard(list) -> this rank's items, in order; dist.shard(n) -> first, last (0-based,
// inclusive of first, exclusive of last) of n items.
int dist_shard(lua_State* L) {
  if (lua_isinteger(L, 1)) {
    const int64_t count = lua_tointeger(L, 1);
    if (count < 0) throw ArgError(1, "the number of items must be >= 0");
    const auto [begin, end] = job::shard_range(count);
    lua_pushinteger(L, begin);
    lua_pushinteger(L, end);
    return 2;
  }
  if (!lua_istable(L, 1)) type_error(L, 1, "list or integer");
  const auto count = static_cast<int64_t>(luaL_len(L, 1));
  const auto [begin, end] = job::shard_range(count);
  lua_createtable(L, static_cast<int>(end - begin), 0);
  for (int64_t i = begin; i < end; ++i) {
    lua_geti(L, 1, i + 1);
    lua_seti(L, -2, i - begin + 1);
  }
  return 1;
}

int dist_all_reduce(lua_State* L) {
  const at::Tensor& t = check_tensor(L, 1);
  const std::string op = lua_isnoneornil(L, 2) ? "sum" : check_string(L, 2);
  push_tensor(L, dist::all_reduce(t, dist::parse_reduce_op(op)));
  return 1;
}

int dist_all_gather(lua_State* L) {
  push_tensor(L, dist::all_gather(check_tensor(L, 1)));
  return 1;
}

int dist_broadcast(lua_State* L) {
  const at::Tensor& t = check_tensor(L, 1);
  const int64_t root = lua_isnoneornil(L, 2) ? 0 : check_integer(L, 2);
  push_tensor(L, dist::broadcast(t, static_cast<int>(root)));
  return 1;
}

int dist_barrier(lua_State*) {
  dist::barrier();
  return 0;
}

}  // namespace

void open_dist(lua_State* L) {
  const luaL_Reg functions[] = {
      {"rank", entry<dist_rank>},
      {"world_size", entry<dist_world_size>},
      {"is_main", entry<dist_is_main>},
      {"shard", entry<dist_shard>},
      {"all_reduce", entry<dist_all_reduce>},
      {"all_gather", entry<dist_all_gather>},
      {"broadcast", entry<dist_broadcast>},
      {"barrier", entry<dist_barrier>},
      {nullptr, nullptr},
  };
  luaL_newlib(L, functions);
  lua_setglobal(L, "dist");
}

}  // namespace llmscope::lua
