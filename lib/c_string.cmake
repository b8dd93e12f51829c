# lib/c_string.cmake - a file's bytes as the body of a C string literal.
#
# include()d by the -P scripts that embed data files into the binaries
# (lib/embed_rules.cmake, state/embed_migrations.cmake), so the escaping
# rules live in one place. The file is read as hex so every byte, NUL
# included, is seen exactly; octal escapes always have 3 digits (unlike \x,
# they cannot swallow the next character); each line of the file becomes
# one line of the literal. A control character other than TAB, CR or LF is
# refused with the file and line, since no data file we embed has one.
#
#   c_string_literal(PATH OUT_VAR)   sets OUT_VAR to the escaped text
function(c_string_literal path out_var)
  file(READ "${path}" hex HEX)
  string(LENGTH "${hex}" hexlen)
  set(text "")
  set(i 0)
  set(line 1)
  while(i LESS hexlen)
    string(SUBSTRING "${hex}" ${i} 2 hh)
    math(EXPR i "${i} + 2")
    math(EXPR c "0x${hh}")
    if(c EQUAL 10)
      string(APPEND text "\\n\"\n    \"")
      math(EXPR line "${line} + 1")
    elseif(c EQUAL 13)
      string(APPEND text "\\r")
    elseif(c EQUAL 92)
      string(APPEND text "\\\\")
    elseif(c EQUAL 34)
      string(APPEND text "\\\"")
    elseif(c EQUAL 63)
      string(APPEND text "\\?")
    elseif(c EQUAL 9)
      string(APPEND text "\\t")
    elseif(c GREATER_EQUAL 32 AND c LESS 127)
      string(ASCII ${c} ch)
      string(APPEND text "${ch}")
    elseif(c LESS 32 OR c EQUAL 127)
      message(FATAL_ERROR "${path}:${line}: control character 0x${hh}")
    else()
      math(EXPR d2 "${c} / 64")
      math(EXPR d1 "(${c} / 8) % 8")
      math(EXPR d0 "${c} % 8")
      string(APPEND text "\\${d2}${d1}${d0}")
    endif()
  endwhile()
  set(${out_var} "${text}" PARENT_SCOPE)
endfunction()
