// Errors found in what a DBA wrote (tool SQL, parameter definitions). Pure C++: the boundary
// module turns them into ereport(ERROR) with the SQLSTATE, message, detail and hint given here.
#pragma once

#include <stdexcept>
#include <string>

namespace pg_mcp {

class DefinitionError : public std::runtime_error {
  public:
    // sqlstate: the five-character SQLSTATE, e.g. "22023".
    DefinitionError(std::string sqlstate, const std::string &message, std::string detail = {},
                    std::string hint = {})
        : std::runtime_error(message),
          sqlstate_(std::move(sqlstate)),
          detail_(std::move(detail)),
          hint_(std::move(hint)) {}

    const std::string &sqlstate() const noexcept { return sqlstate_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

  private:
    std::string sqlstate_;
    std::string detail_;
    std::string hint_;
};

}  // namespace pg_mcp
