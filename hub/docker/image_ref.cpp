#include "hub/docker/image_ref.h"

#include <string>

namespace rx::hub {
namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool word(char c) { return alnum(c) || c == '_'; }
bool hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// path-component := alpha-numeric [separator alpha-numeric]*;  separator := [_.] | __ | [-]*
bool path_component(std::string_view s) {
  if (s.empty() || !lower_alnum(s.front()) || !lower_alnum(s.back())) return false;
  for (size_t i = 0; i < s.size();) {
    if (lower_alnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !lower_alnum(s[j])) ++j;
    auto sep = s.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool domain_component(std::string_view s) {
  if (s.empty() || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s)
    if (!alnum(c) && c != '-') return false;
  return true;
}

// domain := host [":" port];  host := domain-name | IPv4 | "[" IPv6 "]"  (an IPv4 address is a domain-name too)
bool domain(std::string_view s) {
  std::string_view host = s;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : s.substr(1, close - 1))
      if (!hex(c) && c != ':') return false;
    host = {};
    s.remove_prefix(close + 1);
    if (s.empty()) return true;
    if (s.front() != ':') return false;
  } else {
    auto colon = s.find(':');
    host = s.substr(0, colon);
    s = colon == std::string_view::npos ? std::string_view() : s.substr(colon);
    if (host.empty()) return false;
    while (!host.empty()) {
      auto dot = host.find('.');
      if (!domain_component(host.substr(0, dot))) return false;
      if (dot == std::string_view::npos) break;
      host.remove_prefix(dot + 1);
      if (host.empty()) return false;  // a trailing dot
    }
  }
  if (s.empty()) return true;
  auto port = s.substr(1);  // after ':'
  return !port.empty() && port.find_first_not_of("0123456789") == std::string_view::npos;
}

// digest := algorithm ":" hex{32,};  algorithm := [A-Za-z][A-Za-z0-9]* ([+.-_] [A-Za-z][A-Za-z0-9]*)*
bool digest(std::string_view s) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  auto algo = s.substr(0, colon), value = s.substr(colon + 1);
  if (value.size() < 32) return false;
  for (char c : value)
    if (!hex(c)) return false;
  bool start = true;
  for (char c : algo) {
    if (start) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
      start = false;
    } else if (c == '+' || c == '.' || c == '-' || c == '_') {
      start = true;
    } else if (!alnum(c)) {
      return false;
    }
  }
  return !algo.empty() && !start;
}

}  // namespace

Status check_image_ref(std::string_view ref, std::string_view field) {
  auto bad = [&](const std::string& why) {
    return make_error("bad_field", std::string(field) + ": not an image reference (" + why +
                                       "); expected [registry/]name[:tag][@digest], e.g. rexec/debian:12");
  };
  if (ref.empty()) return bad("empty");
  std::string_view name = ref;
  if (auto at = name.find('@'); at != std::string_view::npos) {
    if (!digest(name.substr(at + 1))) return bad("the digest after @ is not algorithm:hex");
    name = name.substr(0, at);
  }
  auto last_slash = name.rfind('/');
  auto colon = name.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    auto tag = name.substr(colon + 1);
    if (tag.empty() || tag.size() > 128 || !word(tag.front())) return bad("a tag is 1-128 of A-Z a-z 0-9 _ . -, not starting with . or -");
    for (char c : tag)
      if (!word(c) && c != '.' && c != '-') return bad("a tag is 1-128 of A-Z a-z 0-9 _ . -, not starting with . or -");
    name = name.substr(0, colon);
  }
  if (name.empty()) return bad("no name");
  if (name.size() > 255) return bad("the name is longer than 255 characters");
  size_t first = name.find('/');
  std::string_view head = name.substr(0, first);
  bool more = first != std::string_view::npos;
  if (!((more && domain(head)) || path_component(head))) {
    std::string why(1, '"');  // appended, not "\"" + b: GCC 12 -O3 warns on that (-Wrestrict, bug 105329)
    why += head.substr(0, 64);
    return bad(why + "\" is neither a registry host nor a lower-case name component");
  }
  std::string_view rest = more ? name.substr(first + 1) : std::string_view();
  while (more) {
    auto slash = rest.find('/');
    if (!path_component(rest.substr(0, slash)))
      return bad("name components are lower-case letters and digits, joined by . _ __ or dashes");
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return Ok{};
}

}  // namespace rx::hub
