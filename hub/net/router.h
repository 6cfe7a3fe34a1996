// Router: maps (method, path pattern) to a handler. Patterns are literal segments and {name}
// placeholders: "/api/v1/terminals/{id}"; a placeholder may end in a literal suffix,
// "/api/v1/recordings/{id}.cast", which the segment must end with (and is not part of the param). A path that matches some pattern but not the method is
// 405 (with Allow), one that matches nothing is 404: both as JSON errors. routes() lists every
// route so docs/api.md can be checked against the code.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "hub/net/http.h"

namespace rx::hub {

template <typename Handler>
class Router {
 public:
  struct Route {
    std::string method;
    std::string pattern;
    Handler handler;
  };

  void add(std::string method, std::string pattern, Handler handler) {
    routes_.push_back({std::move(method), std::move(pattern), std::move(handler)});
  }

  struct Match {
    const Handler* handler = nullptr;  // null: see error
    const std::string* pattern = nullptr;  // the matched route's pattern (metrics label it by route)
    Error error;
    std::string allow;  // for 405
    // The answer to a miss: the JSON error, with Allow on a 405.
    Response refusal() const {
      auto r = error_response(error);
      if (!allow.empty()) r.headers.push_back({"Allow", allow});
      return r;
    }
  };

  // Fills req.params on a match.
  Match match(Request& req) const {
    std::string allow;
    for (const auto& r : routes_) {
      std::map<std::string, std::string> params;
      if (!matches(r.pattern, req.path, params)) continue;
      if (r.method == req.method) {
        req.params = std::move(params);
        return {&r.handler, &r.pattern, {}, {}};
      }
      allow += (allow.empty() ? "" : ", ") + r.method;
    }
    if (!allow.empty())
      return {nullptr, nullptr, make_error("method_not_allowed", req.method + " is not allowed on " + req.path), allow};
    return {nullptr, nullptr, make_error("not_found", "no route for " + req.path), {}};
  }

  const std::vector<Route>& routes() const { return routes_; }

 private:
  static bool matches(std::string_view pattern, std::string_view path, std::map<std::string, std::string>& params) {
    while (!pattern.empty() && !path.empty()) {
      auto pslash = pattern.find('/', 1);
      auto xslash = path.find('/', 1);
      auto pseg = pattern.substr(0, pslash);
      auto xseg = path.substr(0, xslash);
      auto close = pseg.find('}');
      if (pseg.size() > 3 && pseg[1] == '{' && close != std::string_view::npos) {
        auto suffix = pseg.substr(close + 1);
        // "{id}" never matches an empty segment, nor "{id}.cast" a bare ".cast".
        if (xseg.size() < 2 + suffix.size() || !xseg.ends_with(suffix)) return false;
        params[std::string(pseg.substr(2, close - 2))] = std::string(xseg.substr(1, xseg.size() - 1 - suffix.size()));
      } else if (pseg != xseg) {
        return false;
      }
      pattern = pslash == std::string_view::npos ? std::string_view() : pattern.substr(pslash);
      path = xslash == std::string_view::npos ? std::string_view() : path.substr(xslash);
    }
    return pattern.empty() && path.empty();
  }

  std::vector<Route> routes_;
};

}  // namespace rx::hub
