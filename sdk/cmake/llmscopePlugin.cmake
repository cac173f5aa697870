# llmscope_add_plugin(<name> [NO_INSTALL] <sources>...): builds llmscope_plugin_<name>, a module
# library the llmscope host loads by name (plugin("<name>") in Lua). The same function serves
# plugins in the llmscope tree and third-party plugins built against an installed SDK.
function(llmscope_add_plugin name)
  cmake_parse_arguments(PLUGIN "NO_INSTALL" "" "" ${ARGN})
  set(target llmscope_plugin_${name})
  add_library(${target} MODULE ${PLUGIN_UNPARSED_ARGUMENTS})
  target_link_libraries(${target} PRIVATE llmscope::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    CXX_STANDARD 17
    CXX_STANDARD_REQUIRED ON
    # Only the descriptor and the factory are exported; everything else stays private.
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(DEFINED LLMSCOPE_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${LLMSCOPE_PLUGIN_OUTPUT_DIRECTORY})
  endif()
  if(NOT PLUGIN_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION lib/llmscope/plugins)
  endif()
endfunction()
