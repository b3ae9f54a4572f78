// PostgreSQL type OIDs of the parameter bindings.
#pragma once

#include "param_adapter.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

namespace pg_mcp {

inline Oid element_type_oid(BindType type) {
    switch (type) {
        case BindType::Text:
            return TEXTOID;
        case BindType::Bigint:
            return INT8OID;
        case BindType::Numeric:
            return NUMERICOID;
        case BindType::Boolean:
            return BOOLOID;
        case BindType::Uuid:
            return UUIDOID;
        case BindType::Date:
            return DATEOID;
        case BindType::Timestamptz:
            return TIMESTAMPTZOID;
    }
    return TEXTOID;
}

inline Oid binding_type_oid(ParamBinding binding) {
    if (!binding.is_array) return element_type_oid(binding.type);
    switch (binding.type) {
        case BindType::Text:
            return TEXTARRAYOID;
        case BindType::Bigint:
            return INT8ARRAYOID;
        case BindType::Numeric:
            return NUMERICARRAYOID;
        case BindType::Boolean:
            return BOOLARRAYOID;
        case BindType::Uuid:
            return UUIDARRAYOID;
        case BindType::Date:
            return DATEARRAYOID;
        case BindType::Timestamptz:
            return TIMESTAMPTZARRAYOID;
    }
    return TEXTARRAYOID;
}

}  // namespace pg_mcp
