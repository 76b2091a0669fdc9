# cmake -DCRIA=path/to/cria -DMINI=testdata/mini -P cli_run.cmake: on the
# trained miniatures (a Llama and a Falcon), `cria run --backend vulkan
# --greedy` prints the same text as `--backend cpu`, and decodes through the
# device's layer stack (the placement's `decode` row under -v). Skips (and
# says so) without a Vulkan device unless CRIA_VK_REQUIRE=1.
execute_process(COMMAND ${CRIA} devices RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0 AND NOT "$ENV{CRIA_VK_REQUIRE}" STREQUAL "1")
  message(STATUS "skipped: no Vulkan device (${err})")
  return()
endif()
foreach(f llama-mini/q4.cria falcon-mini/q8.cria llama-mini/f16.cria)
  # The Llama miniature is a chat model: ask it in its template.
  set(args -p "The")
  if(f MATCHES "llama")
    set(args --chat -p "Tell me a fortune.")
  endif()
  set(out_cpu "")
  foreach(b cpu vulkan)
    execute_process(COMMAND ${CRIA} run -v --backend ${b} -m ${MINI}/${f} --greedy --max-new-tokens 48 ${args}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0 OR out STREQUAL "")
      message(FATAL_ERROR "cria run --backend ${b} ${f}: rc=${rc}\n${out}${err}")
    endif()
    if(b STREQUAL "cpu")
      set(out_cpu "${out}")
    else()
      if(NOT err MATCHES "decode +vulkan")
        message(FATAL_ERROR "${f}: --backend vulkan did not decode through the layer stack:\n${err}")
      endif()
      if(NOT out STREQUAL out_cpu)
        message(FATAL_ERROR "${f}: vulkan printed\n${out}\ncpu printed\n${out_cpu}")
      endif()
    endif()
  endforeach()
  string(LENGTH "${out_cpu}" n)
  message(STATUS "${f}: same ${n} characters on vulkan and cpu")
endforeach()
# --device picks the device (CRIA_VK_DEVICE); one that does not exist is a
# one-line error naming it, and a non-index is a usage error.
execute_process(COMMAND ${CRIA} run --backend vulkan --device 0 -m ${MINI}/llama-mini/q4.cria -p "The" -n 4
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "--device 0: rc=${rc}\n${err}")
endif()
execute_process(COMMAND ${CRIA} run --backend vulkan --device 99 -m ${MINI}/llama-mini/q4.cria -p "The" -n 4
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "device 99 does not exist")
  message(FATAL_ERROR "--device 99: rc=${rc}\n${err}")
endif()
execute_process(COMMAND ${CRIA} run --backend vulkan --device first -m ${MINI}/llama-mini/q4.cria -p "The"
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "--device expects a device index")
  message(FATAL_ERROR "--device first: rc=${rc}\n${err}")
endif()
