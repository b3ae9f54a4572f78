// Rows to JSON and result columns to JSON Schema. Plain C style: PostgreSQL calls only.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
}

namespace pg_mcp {

struct ColumnWriter;

// Whether a row of desc can carry text someone wrote (a string, JSON, array or composite
// column): what a result marked as untrusted data is for.
bool carries_text(TupleDesc desc);

// How to render each column of desc; palloc'd in CurrentMemoryContext.
ColumnWriter *prepare_column_writers(TupleDesc desc);

// Appends one row as a JSON object {"column": value, ...}.
void append_row_json(StringInfo out, HeapTuple tuple, TupleDesc desc, const ColumnWriter *writers);

// MCP outputSchema of a tool whose SQL returns desc (NULL: no rows, e.g. UPDATE without
// RETURNING). Raises an error when two result columns share a name.
char *output_schema_json(TupleDesc desc);

}  // namespace pg_mcp
