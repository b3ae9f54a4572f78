# pg_mcp extension, built with PGXS.  The bridge and the C++ unit tests build with CMake.
MODULE_big = pg_mcp
MODULEDIR  = extension
EXTVERSION = 0.1.0

SRCS = $(wildcard extension/src/*.cpp)
OBJS = $(SRCS:.cpp=.o)
DATA = extension/pg_mcp.control $(wildcard extension/pg_mcp--*.sql)

REGRESS = install create_tool list_tools call_tool audit audit_trail standby_audit tool_costs tool_review advise drafts refresh rate_limits security principals tokens sandbox_views resources query_tool attacks lookup_cache call_tool_stream
REGRESS_OPTS = --inputdir=. --outputdir=build/regress

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Iextension/src
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register -MMD -MP
EXTRA_CLEAN = $(OBJS:.o=.d)
SHLIB_LINK = -lstdc++

# JIT bitcode is not built: it needs clang and gains nothing for this extension.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)


# Header dependencies (-MMD): a changed header rebuilds the objects that include it.
-include $(OBJS:.o=.d)

installcheck: | build/regress
build/regress:
	mkdir -p $@

.PHONY: format format-check
FORMAT_FILES = $(wildcard extension/src/*.cpp extension/src/*.hpp bridge/*.cpp bridge/*.hpp test/unit/*.cpp test/e2e/*.cpp test/e2e/*.hpp)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)
