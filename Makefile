# pg_mcp extension, built with PGXS.  The bridge and the C++ unit tests build with CMake.
MODULE_big = pg_mcp
MODULEDIR  = extension
# The one version source is the control file's default_version: C++ (the extension and, through
# CMake, the bridge) gets it at build time.
EXTVERSION := $(shell sed -n "s/^default_version = '\\(.*\\)'/\\1/p" extension/pg_mcp.control)

SRCS = $(wildcard extension/src/*.cpp)
OBJS = $(SRCS:.cpp=.o)
DATA = extension/pg_mcp.control $(wildcard extension/pg_mcp--*.sql)

REGRESS = install create_tool list_tools call_tool audit audit_trail standby_audit tool_costs tool_review advise drafts refresh rate_limits security principals tokens sandbox_views resources query_tool attacks lookup_cache call_tool_stream audit_limits
REGRESS_OPTS = --inputdir=. --outputdir=build/regress
# Concurrent sessions (pg_isolation_regress): specs/NAME.spec, expected/NAME.out.
ISOLATION = catalog_snapshot
ISOLATION_OPTS = --inputdir=. --outputdir=build/isolation

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Iextension/src -DPG_MCP_VERSION=\"$(EXTVERSION)\"
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register -MMD -MP
EXTRA_CLEAN = $(OBJS:.o=.d)
SHLIB_LINK = -lstdc++

# JIT bitcode is not built: it needs clang and gains nothing for this extension.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)


# Header dependencies (-MMD): a changed header rebuilds the objects that include it.
-include $(OBJS:.o=.d)

installcheck: | build/regress build/isolation
build/regress build/isolation:
	mkdir -p $@

.PHONY: format format-check
FORMAT_FILES = $(wildcard extension/src/*.cpp extension/src/*.hpp bridge/*.cpp bridge/*.hpp test/unit/*.cpp test/e2e/*.cpp test/e2e/*.hpp)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)
