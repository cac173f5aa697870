# A random BERT with a real WordPiece vocabulary (made here; included from
# tests/plugins/CMakeLists.txt) and what needs it: the tlesion and logit_lens specs (with the tiny
# fixtures and the random GPT-2) and the masked-LM form of lessons 13-01, 13-04, 13-15 to 13-17,
# 15-03, 15-04, 16-01, 17-02 and 17-03.
set(LLMSCOPE_RANDOM_BERT "${CMAKE_CURRENT_BINARY_DIR}/random-bert-12")
add_test(NAME plugins.make_random_bert
  COMMAND llmscope -q run ${CMAKE_CURRENT_SOURCE_DIR}/make_random_bert.lua --
          ${LLMSCOPE_RANDOM_BERT} ${LLMSCOPE_GOLDEN_DIR}/tokenizers/wordpiece/vocab.txt)
set_tests_properties(plugins.make_random_bert PROPERTIES FIXTURES_SETUP random_bert LABELS plugins)

add_test(NAME lua.plugins.tlesion
  COMMAND llmscope run ${CMAKE_CURRENT_SOURCE_DIR}/tlesion_spec.lua --model ${LLMSCOPE_GOLDEN_DIR}/gpt2-tiny
          --out ${CMAKE_CURRENT_BINARY_DIR}/out/tlesion
          -- ${LLMSCOPE_GOLDEN_DIR} ${CMAKE_BINARY_DIR}/tests/lua/random-gpt2-12 ${LLMSCOPE_RANDOM_BERT})
set_tests_properties(lua.plugins.tlesion PROPERTIES LABELS "lua;plugins"
  FIXTURES_REQUIRED "random_gpt2;random_bert")
add_dependencies(llmscope_plugin_tests llmscope_plugin_tlesion)

foreach(id 13-01 13-04 13-15 13-16 13-17 15-03 15-04 16-01 17-02 17-03)
  add_test(NAME lesson.${id}.bert
    COMMAND ${CMAKE_COMMAND} -E env --unset=LLMSCOPE_MODEL
            $<TARGET_FILE:llmscope> -q lesson run ${id} --model ${LLMSCOPE_RANDOM_BERT}
            --out ${CMAKE_CURRENT_BINARY_DIR}/out/lesson-${id}-bert)
  set_tests_properties(lesson.${id}.bert PROPERTIES LABELS "lesson;plugins" FIXTURES_REQUIRED random_bert)
endforeach()

# The logit_lens spec.
add_test(NAME lua.plugins.logit_lens
  COMMAND llmscope run ${CMAKE_CURRENT_SOURCE_DIR}/logit_lens_spec.lua
          -- ${LLMSCOPE_GOLDEN_DIR} ${CMAKE_BINARY_DIR}/tests/lua/random-gpt2-12 ${LLMSCOPE_RANDOM_BERT})
set_tests_properties(lua.plugins.logit_lens PROPERTIES LABELS "lua;plugins"
  FIXTURES_REQUIRED "random_gpt2;random_bert")
add_dependencies(llmscope_plugin_tests llmscope_plugin_logit_lens)
