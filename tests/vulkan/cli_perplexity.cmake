# cmake -DCRIA=path/to/cria -DMINI=testdata/mini -DOUT=dir -P cli_perplexity.cmake:
# the perplexity of the trained miniatures' q4 and q8 files on held-out text
# through `--backend vulkan` is within 0.1% of `--backend cpu` on the same
# file (issue #13's bar). Both quantize the activations to int8 the same way
# (vk_ops), so they differ only in f32 summation order, which flips the odd
# activation code at a rounding midpoint. That noise is the CPU's own too:
# on the Llama miniature's q8 and this text, avx512vnni, avx2 and scalar
# kernels differ by up to 0.06%; vulkan measured -0.07% to +0.03% against
# avx512vnni. Skips without a Vulkan device unless CRIA_VK_REQUIRE=1.
execute_process(COMMAND ${CRIA} devices RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0 AND NOT "$ENV{CRIA_VK_REQUIRE}" STREQUAL "1")
  message(STATUS "skipped: no Vulkan device (${err})")
  return()
endif()
# A slice of held-out text: lavapipe (Vulkan on the CPU) runs a batch as
# dispatches of 8 tokens per layer, so ~800 tokens take ~15 s a file.
file(MAKE_DIRECTORY ${OUT})
foreach(m llama-mini falcon-mini)
  # The linear layers really are on the device (an ignored --backend would
  # make the two perplexities equal and pass).
  execute_process(COMMAND ${CRIA} inspect --placement --backend vulkan ${MINI}/${m}/q4.cria
                  RESULT_VARIABLE rc OUTPUT_VARIABLE placed ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT placed MATCHES "linear +vulkan")
    message(FATAL_ERROR "${m}: the linear layers are not on vulkan:\n${placed}${err}")
  endif()
  file(READ ${MINI}/${m}/corpus/${m}/heldout.txt text LIMIT 3000)
  file(WRITE ${OUT}/${m}-heldout.txt "${text}")
  foreach(q q4 q8)
    set(ppl "")
    foreach(b cpu vulkan)
      execute_process(COMMAND ${CRIA} perplexity --backend ${b} -m ${MINI}/${m}/${q}.cria -f ${OUT}/${m}-heldout.txt
                              --ctx 256 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
      if(NOT rc EQUAL 0 OR NOT out MATCHES "perplexity: ([0-9.]+)")
        message(FATAL_ERROR "cria perplexity --backend ${b} ${m}/${q}: rc=${rc}\n${out}${err}")
      endif()
      list(APPEND ppl ${CMAKE_MATCH_1})
    endforeach()
    list(GET ppl 0 p_cpu)
    list(GET ppl 1 p_vk)
    # CMake has no floating point: compare in millionths, as integers.
    string(REGEX REPLACE "^([0-9]+)\\.([0-9]*)$" "\\1;\\2" c_parts "${p_cpu}")
    string(REGEX REPLACE "^([0-9]+)\\.([0-9]*)$" "\\1;\\2" v_parts "${p_vk}")
    foreach(side c v)
      list(GET ${side}_parts 0 ip)
      list(GET ${side}_parts 1 fp)
      string(SUBSTRING "${fp}000000" 0 6 fp6)
      math(EXPR ${side}_micro "${ip} * 1000000 + 1${fp6} - 1000000")
    endforeach()
    math(EXPR diff "${v_micro} - ${c_micro}")
    if(diff LESS 0)
      math(EXPR diff "-${diff}")
    endif()
    # within 0.1%: |vk - cpu| * 1000 <= cpu
    math(EXPR lhs "${diff} * 1000")
    message(STATUS "${m}/${q}: perplexity cpu ${p_cpu}, vulkan ${p_vk}")
    if(lhs GREATER c_micro)
      message(FATAL_ERROR "${m}/${q}: vulkan perplexity ${p_vk} is not within 0.1% of cpu's ${p_cpu}")
    endif()
  endforeach()
endforeach()
