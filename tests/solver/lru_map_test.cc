// solver/lru_map.h: the least recently used entries leave first, by cost against the capacity.

#include "solver/lru_map.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace mpc {
namespace {

std::shared_ptr<const int> Value(int v) { return std::make_shared<const int>(v); }

TEST(LruMap, TheLeastRecentlyUsedLeaveFirstUntilTheCostsFit) {
  LruMap<int> map(10);
  EXPECT_TRUE(map.Insert("a", Value(1), 4));
  EXPECT_TRUE(map.Insert("b", Value(2), 4));
  ASSERT_NE(map.Find("a"), nullptr);  // now a is the most recently used
  EXPECT_TRUE(map.Insert("c", Value(3), 4));
  EXPECT_EQ(map.Find("b"), nullptr);
  EXPECT_EQ(*map.Find("a"), 1);
  EXPECT_EQ(*map.Find("c"), 3);
  EXPECT_EQ(map.size(), 2);
  EXPECT_EQ(map.total_cost(), 8);
  // Two leave for one that needs their room.
  EXPECT_TRUE(map.Insert("d", Value(4), 9));
  EXPECT_EQ(map.size(), 1);
  EXPECT_EQ(map.total_cost(), 9);
}

TEST(LruMap, AnEntryOverTheCapacityIsNotKeptAndEvictsNothing) {
  LruMap<int> map(10);
  EXPECT_TRUE(map.Insert("a", Value(1), 6));
  EXPECT_FALSE(map.Insert("big", Value(2), 11));
  EXPECT_EQ(map.Find("big"), nullptr);
  EXPECT_EQ(*map.Find("a"), 1);
  EXPECT_EQ(map.total_cost(), 6);
  LruMap<int> none(0);
  EXPECT_FALSE(none.Insert("a", Value(1), 1));
  EXPECT_EQ(none.size(), 0);
}

TEST(LruMap, InsertingAKeyAgainReplacesItsValueAndCost) {
  LruMap<int> map(10);
  EXPECT_TRUE(map.Insert("a", Value(1), 6));
  EXPECT_TRUE(map.Insert("a", Value(2), 3));
  EXPECT_EQ(*map.Find("a"), 2);
  EXPECT_EQ(map.size(), 1);
  EXPECT_EQ(map.total_cost(), 3);
  // A value a caller still holds outlives its eviction.
  std::shared_ptr<const int> held = map.Find("a");
  EXPECT_TRUE(map.Insert("b", Value(3), 10));
  EXPECT_EQ(map.Find("a"), nullptr);
  EXPECT_EQ(*held, 2);
}

}  // namespace
}  // namespace mpc
