# Layering check (DESIGN §6): every file under <ROOT>/rlab/<layer>/ may include only the rlab
# layers below it. All headers share one include root (cpp/), so target linkage alone cannot
# stop `#include "rlab/sim/..."` in live/; this script does. Fails naming file, line and include.
#   cmake -DROOT=<dir holding rlab/> -P check_layers.cmake
# A new layer directory must be added to the table below, or the check fails.
cmake_minimum_required(VERSION 3.20)
if(NOT DEFINED ROOT)
  message(FATAL_ERROR "check_layers: pass -DROOT=<directory holding rlab/>")
endif()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)

# layer -> the layers its files may include (itself included). Arrows point down only:
# core <- policy <- model <- {sim, live}; the bindings (outside rlab/) may include all of them.
set(_allowed_core core)
set(_allowed_policy core policy)
set(_allowed_model core policy model)
set(_allowed_sim core policy model sim)
set(_allowed_live core policy model live)
set(_layers core policy model sim live)

set(_errors "")
set(_checked 0)
file(GLOB _dirs LIST_DIRECTORIES true RELATIVE "${ROOT}/rlab" "${ROOT}/rlab/*")
foreach(_d IN LISTS _dirs)
  if(IS_DIRECTORY "${ROOT}/rlab/${_d}" AND NOT _d IN_LIST _layers)
    string(APPEND _errors "rlab/${_d}/: unknown layer; add it to the table in check_layers.cmake\n")
  endif()
endforeach()

foreach(_layer IN LISTS _layers)
  file(GLOB_RECURSE _files "${ROOT}/rlab/${_layer}/*.h" "${ROOT}/rlab/${_layer}/*.cc")
  list(SORT _files)
  foreach(_f IN LISTS _files)
    math(EXPR _checked "${_checked} + 1")
    file(STRINGS "${_f}" _lines)
    set(_n 0)
    foreach(_line IN LISTS _lines)
      math(EXPR _n "${_n} + 1")
      if(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*[<\"]rlab/([A-Za-z0-9_]+)/")
        set(_target "${CMAKE_MATCH_1}")
        if(NOT _target IN_LIST _allowed_${_layer})
          string(STRIP "${_line}" _inc)
          file(RELATIVE_PATH _rel "${ROOT}" "${_f}")
          list(JOIN _allowed_${_layer} ", " _ok)
          string(APPEND _errors "${_rel}:${_n}: ${_layer}/ may not include ${_target}/ (${_inc}); "
                                "allowed: ${_ok}\n")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()

if(_errors)
  # NOTICE prints the lines as they are (FATAL_ERROR would re-wrap them).
  message(NOTICE "${_errors}")
  message(FATAL_ERROR "check_layers: wrong-direction include(s) above; "
                      "the layers are core <- policy <- model <- {sim, live}")
endif()
message(STATUS "check_layers: ${_checked} files under ${ROOT}/rlab follow the layering")
