// hub/api/exec_stream.h: which requests want the stream.
#include "hub/api/exec_stream.h"

#include <gtest/gtest.h>

namespace rx::hub {
namespace {

Request with_accept(const std::string& accept) {
  Request r;
  r.headers["accept"] = accept;
  return r;
}

TEST(ExecStreamText, AcceptNamesTheStream) {
  EXPECT_TRUE(wants_ndjson(with_accept("application/x-ndjson")));
  EXPECT_TRUE(wants_ndjson(with_accept("application/json;q=0.5, Application/X-NDJSON; charset=utf-8")));
  EXPECT_FALSE(wants_ndjson(with_accept("application/json")));
  EXPECT_FALSE(wants_ndjson(with_accept("*/*")));
  EXPECT_FALSE(wants_ndjson(with_accept("application/x-ndjsonx")));
  EXPECT_FALSE(wants_ndjson(Request{}));
}

}  // namespace
}  // namespace rx::hub
