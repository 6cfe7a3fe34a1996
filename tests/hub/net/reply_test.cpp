// hub/net/reply.h: what a handler returns becomes the one answer the wrapper sends; Later sends none.
#include "hub/net/reply.h"

#include <gtest/gtest.h>

namespace rx::hub {
namespace {

TEST(Reply, AResponseIsSentAsItIs) {
  Response r = json_response(201, {{"id", "t_1"}});
  r.headers.push_back({"Retry-After", "3"});
  Reply reply = r;
  EXPECT_FALSE(reply.later());
  Response sent = std::move(reply).response();
  EXPECT_EQ(sent.status, 201);
  EXPECT_EQ(sent.body, r.body);
  EXPECT_EQ(sent.headers, r.headers);
}

TEST(Reply, AnErrorIsSentAsTheJsonErrorOfItsCode) {
  Reply reply = make_error("not_found", "no terminal \"t_9\"");
  EXPECT_FALSE(reply.later());
  Response sent = std::move(reply).response();
  EXPECT_EQ(sent.status, 404);
  auto body = nlohmann::json::parse(sent.body);
  EXPECT_EQ(body["code"], "not_found");
  EXPECT_EQ(body["error"], "no terminal \"t_9\"");
  // The same bytes error_response() gives: one mapping from code to status and body.
  EXPECT_EQ(sent.body, error_response(make_error("not_found", "no terminal \"t_9\"")).body);
}

TEST(Reply, LaterMeansTheHandlerAnswersItself) {
  Reply reply = Later{};
  EXPECT_TRUE(reply.later());
}

}  // namespace
}  // namespace rx::hub
