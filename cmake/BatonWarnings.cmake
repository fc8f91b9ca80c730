# baton_warnings(<target>...)
#
# Enables strict warnings for first-party targets only. Third-party headers
# (from /usr/include or imported targets) are treated as system headers and
# are not affected.
function(baton_warnings)
  foreach(target IN LISTS ARGN)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  endforeach()
endfunction()
