# cmake -DCRIA=path/to/cria [-DEMULATOR=qemu|args] -P cli_devices.cmake: `cria devices` lists a
# device here, and with no Vulkan driver (an ICD list naming nothing) exits
# 1 with a one-line error.
string(REPLACE "|" ";" run "${EMULATOR}")
list(APPEND run ${CRIA})
execute_process(COMMAND ${run} devices RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 1 AND err MATCHES "no Vulkan (device|loader)" AND NOT "$ENV{CRIA_VK_REQUIRE}" STREQUAL "1")
  message(STATUS "skipped the listing: this machine has no Vulkan device (${err})")
elseif(NOT rc EQUAL 0 OR NOT out MATCHES "\n0 ")
  message(FATAL_ERROR "cria devices: rc=${rc}\n${out}${err}")
endif()
set(ENV{VK_ICD_FILENAMES} /nonexistent/icd.json)
execute_process(COMMAND ${run} devices RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX MATCHALL "\n" lines "${err}")
list(LENGTH lines n)
if(NOT rc EQUAL 1 OR NOT err MATCHES "^cria: vulkan: no Vulkan device" OR NOT n EQUAL 1 OR NOT out STREQUAL "")
  message(FATAL_ERROR "cria devices without a driver: rc=${rc} stdout='${out}' stderr='${err}'")
endif()
message(STATUS "cria devices: ok")
