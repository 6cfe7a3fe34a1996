// hub/channel/channel_table: both keys kept in step by one insert and one erase.
#include "hub/channel/channel_table.h"

#include <gtest/gtest.h>

#include "protocol/limits.h"

namespace rx::hub {
namespace {

std::unique_ptr<Terminal> term(const std::string& id, const std::string& agent, uint32_t channel) {
  return std::make_unique<Terminal>(id, agent, channel, protocol::kDefaultWindow);
}

TEST(ChannelTable, FindsByIdAndByChannelAndAMissAddsNothing) {
  ChannelTable table;
  table.insert(term("t_1", "a_1", 3));
  table.insert(term("t_2", "a_2", 3));
  ASSERT_NE(table.find("t_1"), nullptr);
  EXPECT_EQ(table.on_channel("a_1", 3)->id(), "t_1");
  EXPECT_EQ(table.on_channel("a_2", 3)->id(), "t_2");
  EXPECT_EQ(table.find("t_9"), nullptr);
  EXPECT_EQ(table.on_channel("a_1", 4), nullptr);
  EXPECT_EQ(table.size(), 2u);
}

TEST(ChannelTable, ReplacingATerminalDropsItsOldChannel) {
  ChannelTable table;
  table.insert(term("t_1", "a_1", 3));
  Terminal& fresh = table.insert(term("t_1", "a_1", 4));  // restarted on a new channel
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.find("t_1"), &fresh);
  EXPECT_EQ(table.on_channel("a_1", 3), nullptr);
  EXPECT_EQ(table.on_channel("a_1", 4), &fresh);
}

TEST(ChannelTable, EraseRemovesBothKeys) {
  ChannelTable table;
  table.insert(term("t_1", "a_1", 3));
  EXPECT_TRUE(table.erase("t_1"));
  EXPECT_FALSE(table.erase("t_1"));
  EXPECT_EQ(table.find("t_1"), nullptr);
  EXPECT_EQ(table.on_channel("a_1", 3), nullptr);
  EXPECT_EQ(table.size(), 0u);
}

}  // namespace
}  // namespace rx::hub
