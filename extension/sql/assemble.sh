#!/bin/sh
# Assembles a versioned script of the extension from its concern files (Makefile):
#   assemble.sh FIRST_LINE SECOND_LINE FILE...
# prints the two lines, then each FILE, with every "--@include NAME" line replaced by the file
# NAME beside this script, and a blank line between files, so that an install script and an upgrade script share one text of
# each object they both create.
set -eu
dir=$(dirname "$0")
printf '%s\n%s\n' "$1" "$2"
shift 2
first=1
for file in "$@"; do
  [ "$first" = 1 ] || echo
  first=0
  awk -v dir="$dir" '
    /^--@include / {
      path = dir "/" $2
      while ((status = (getline line < path)) > 0) print line
      if (status < 0) { print "assemble.sh: cannot read " path > "/dev/stderr"; exit 1 }
      close(path)
      next
    }
    { print }' "$file"
done
