# Shows that cmake/check_layers.cmake can fail: builds small throwaway trees under WORK, one per
# case, and runs the checker on each. A case with a wrong-direction include must fail and name the
# file, the line and the include; the well-layered tree must pass.
#   cmake -DCHECKER=<check_layers.cmake> -DWORK=<scratch dir> -P check_layers_selftest.cmake
cmake_minimum_required(VERSION 3.20)
set(_failures "")

# A tree that follows core <- policy <- model <- {sim, live}.
function(write_good_tree root)
  file(REMOVE_RECURSE "${root}")
  file(WRITE "${root}/rlab/core/a.h" "#include <vector>\n")
  file(WRITE "${root}/rlab/policy/b.h" "#include \"rlab/core/a.h\"\n")
  file(WRITE "${root}/rlab/model/c.h" "#include \"rlab/policy/b.h\"\n#include \"rlab/core/a.h\"\n")
  file(WRITE "${root}/rlab/sim/d.cc" "#include \"rlab/model/c.h\"\n#include \"rlab/sim/d.h\"\n")
  # A comment that mentions another engine is not an include.
  file(WRITE "${root}/rlab/live/e.cc"
       "// #include \"rlab/sim/d.h\" would be wrong here\n#include \"rlab/model/c.h\"\n")
endfunction()

# Runs the checker on `root`; `expect_ok` TRUE/FALSE; every further argument must appear in
# the output.
function(run_case name root expect_ok)
  execute_process(COMMAND ${CMAKE_COMMAND} -DROOT=${root} -P ${CHECKER}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  if(expect_ok AND NOT rc EQUAL 0)
    string(APPEND _failures "${name}: expected the check to pass, it failed:\n${all}\n")
  elseif(NOT expect_ok AND rc EQUAL 0)
    string(APPEND _failures "${name}: expected the check to fail, it passed:\n${all}\n")
  endif()
  foreach(needle IN LISTS ARGN)
    string(FIND "${all}" "${needle}" pos)
    if(pos EQUAL -1)
      string(APPEND _failures "${name}: output lacks '${needle}':\n${all}\n")
    endif()
  endforeach()
  set(_failures "${_failures}" PARENT_SCOPE)
endfunction()

set(t "${WORK}/good")
write_good_tree("${t}")
run_case(good "${t}" TRUE "5 files")

# The known case the check exists for: live/ taking the result type from sim/.
set(t "${WORK}/live_includes_sim")
write_good_tree("${t}")
file(WRITE "${t}/rlab/live/bad.h" "#pragma once\n\n#include \"rlab/sim/sim_engine.h\"\n")
run_case(live_includes_sim "${t}" FALSE
         "rlab/live/bad.h:3: live/ may not include sim/ (#include \"rlab/sim/sim_engine.h\")")

set(t "${WORK}/sim_includes_live")
write_good_tree("${t}")
file(APPEND "${t}/rlab/sim/d.cc" "#include \"rlab/live/live_engine.h\"\n")
run_case(sim_includes_live "${t}" FALSE "rlab/sim/d.cc:3: sim/ may not include live/")

# Upward includes, angle brackets and spacing after '#'.
set(t "${WORK}/core_includes_policy")
write_good_tree("${t}")
file(WRITE "${t}/rlab/core/f.cc" "#include \"rlab/core/a.h\"\n  #  include <rlab/policy/b.h>\n")
run_case(core_includes_policy "${t}" FALSE "rlab/core/f.cc:2: core/ may not include policy/")

set(t "${WORK}/policy_includes_model")
write_good_tree("${t}")
file(WRITE "${t}/rlab/policy/nested/g.h" "#include \"rlab/model/c.h\"\n")
run_case(policy_includes_model "${t}" FALSE
         "rlab/policy/nested/g.h:1: policy/ may not include model/")

# A layer directory the table does not know fails until it is placed in the table.
set(t "${WORK}/unknown_layer")
write_good_tree("${t}")
file(WRITE "${t}/rlab/extra/h.h" "#include \"rlab/core/a.h\"\n")
run_case(unknown_layer "${t}" FALSE "rlab/extra/: unknown layer")

file(REMOVE_RECURSE "${WORK}")
if(_failures)
  message(FATAL_ERROR "check_layers self-test failed:\n${_failures}")
endif()
message(STATUS "check_layers self-test: all cases behaved")
