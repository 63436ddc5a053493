// The registry's promises to the report: every transport names itself uniquely and says
// which family of the fixed vocabulary it belongs to (the report rates and compares by
// family, never by name).
#include "transports/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace ipcbench {
namespace {

TEST(Registry, NamesAreUnique) {
  std::set<std::string> names;
  for (const Transport* t : all_transports()) {
    EXPECT_FALSE(t->info().name.empty());
    EXPECT_TRUE(names.insert(t->info().name).second) << "registered twice: " << t->info().name;
    EXPECT_EQ(find_transport(t->info().name), t) << t->info().name;
  }
}

TEST(Registry, EveryTransportHasAFamilyOfTheVocabulary) {
  const auto families = transport_families();
  for (const Transport* t : all_transports()) {
    const TransportFamily f = t->info().family;
    EXPECT_NE(f, TransportFamily::kUnset) << t->info().name << " states no family";
    EXPECT_NE(std::find(families.begin(), families.end(), f), families.end()) << t->info().name;
    EXPECT_STRNE(family_name(f), "") << t->info().name;
  }
}

TEST(Registry, FamilyNamesAreDistinctAndNonEmpty) {
  std::set<std::string> names;
  for (TransportFamily f : transport_families()) {
    EXPECT_NE(f, TransportFamily::kUnset);
    EXPECT_STRNE(family_name(f), "");
    EXPECT_TRUE(names.insert(family_name(f)).second) << family_name(f);
  }
  EXPECT_STREQ(family_name(TransportFamily::kUnset), "");
}

}  // namespace
}  // namespace ipcbench
