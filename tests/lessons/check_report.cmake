# Fails unless REPORT exists and its run manifest says the run succeeded.
if(NOT EXISTS "${REPORT}")
  message(FATAL_ERROR "no report at ${REPORT}")
endif()
file(READ "${REPORT}" html)
if(NOT html MATCHES "<th>status</th><td>ok</td>")
  message(FATAL_ERROR "${REPORT}: the run manifest does not say status ok")
endif()
