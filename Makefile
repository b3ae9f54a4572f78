# pg_mcp extension, built with PGXS.  The bridge and the C++ unit tests build with CMake.
# `make` builds in the source tree for the pg_config on PATH (or PG_CONFIG=...); a build per
# server version goes in a directory of its own (scripts/test.sh):
#   make -C build/pg18 -f ../../Makefile PG_CONFIG=/path/to/18/bin/pg_config [install|installcheck]
MODULE_big = pg_mcp
MODULEDIR  = extension
ROOT := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
# The one version source is the control file's default_version: C++ (the extension and, through
# CMake, the bridge) gets it at build time.
EXTVERSION := $(shell sed -n "s/^default_version = '\\(.*\\)'/\\1/p" $(ROOT)/extension/pg_mcp.control)

SRCS = $(wildcard $(ROOT)/extension/src/*.cpp)
OBJS = $(patsubst $(ROOT)/%.cpp,%.o,$(SRCS))
ifneq ($(ROOT),$(CURDIR))
# Out of the tree, sources are found through VPATH, and so would objects of an in-tree build.
ifneq ($(wildcard $(ROOT)/extension/src/*.o $(ROOT)/pg_mcp.so $(ROOT)/extension/pg_mcp--*--*.sql $(ROOT)/extension/pg_mcp--$(EXTVERSION).sql),)
$(error files of an in-tree build are in $(ROOT): run "make clean" there first)
endif
$(shell mkdir -p extension/src)
VPATH = $(ROOT)
endif
# The install script of the current version is assembled from the concern files in
# extension/sql/ (in this order), and each upgrade script from
# extension/sql/upgrade/pg_mcp--FROM--TO.sql;
# a piece both need is one file they --@include. Released versions' install scripts are frozen.
SQL_PARTS = roles catalog audit_log helpers tools_api standby_audit principals tokens identity \
            sandbox_views rate_limits cache_invalidation agent_api builtin_tools refresh drafts \
            monitoring
UPGRADES = 0.1.0--0.2.0
DATA = extension/pg_mcp.control extension/pg_mcp--0.1.0.sql
DATA_built = extension/pg_mcp--$(EXTVERSION).sql $(UPGRADES:%=extension/pg_mcp--%.sql)

REGRESS = install create_tool list_tools call_tool audit audit_trail standby_audit tool_costs tool_review advise drafts refresh rate_limits security principals tokens identity sandbox_views resources query_tool attacks lookup_cache call_tool_stream untrusted_data confirmation audit_limits deferred_audit tool_memory
REGRESS_OPTS = --inputdir=$(ROOT) --outputdir=$(CURDIR)/build/regress
# Concurrent sessions (pg_isolation_regress): specs/NAME.spec, expected/NAME.out.
ISOLATION = catalog_snapshot cancelled_write view_in_use
ISOLATION_OPTS = --inputdir=$(ROOT) --outputdir=$(CURDIR)/build/isolation

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(ROOT)/extension/src -DPG_MCP_VERSION=\"$(EXTVERSION)\"
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wshadow=compatible-local -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register -MMD -MP
EXTRA_CLEAN = $(OBJS:.o=.d)
SHLIB_LINK = -lstdc++

# JIT bitcode is not built: it needs clang and gains nothing for this extension.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# mcp.advise's hypothetical indexes need hypopg; a server without it skips that test.
ifeq ($(wildcard $(shell $(PG_CONFIG) --sharedir)/extension/hypopg.control),)
REGRESS := $(filter-out advise,$(REGRESS))
ifneq ($(filter installcheck,$(MAKECMDGOALS)),)
$(info hypopg is not installed for this server: the advise test is skipped)
endif
endif


SQL_SOURCES = $(ROOT)/extension/sql/assemble.sh $(wildcard $(ROOT)/extension/sql/*.sql)
extension/pg_mcp--$(EXTVERSION).sql: $(SQL_SOURCES)
	$(ROOT)/extension/sql/assemble.sh "-- pg_mcp $(EXTVERSION): governed MCP tools for AI agents." \
	  '\echo Use "CREATE EXTENSION pg_mcp" to load this file. \quit' \
	  $(SQL_PARTS:%=$(ROOT)/extension/sql/%.sql) > $@
extension/pg_mcp--%.sql: $(ROOT)/extension/sql/upgrade/pg_mcp--%.sql $(SQL_SOURCES)
	$(ROOT)/extension/sql/assemble.sh "-- pg_mcp $* (ALTER EXTENSION pg_mcp UPDATE)." \
	  '\echo Use "ALTER EXTENSION pg_mcp UPDATE" to load this file. \quit' $< > $@

# Header dependencies (-MMD): a changed header rebuilds the objects that include it.
-include $(OBJS:.o=.d)

installcheck: | $(CURDIR)/build/regress $(CURDIR)/build/isolation
$(CURDIR)/build/regress $(CURDIR)/build/isolation:
	mkdir -p $@

.PHONY: format format-check
FORMAT_FILES = $(wildcard $(addprefix $(ROOT)/,extension/src/*.cpp extension/src/*.hpp bridge/*.cpp bridge/*.hpp test/unit/*.cpp test/e2e/*.cpp test/e2e/*.hpp test/fuzz/*.cpp))
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)
