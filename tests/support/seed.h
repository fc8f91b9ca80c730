// Seeds of randomised tests, reproducible: a test takes TestSeed(its own
// default) and puts SeedTrace(seed) in a SCOPED_TRACE, so a failure names
// the seed and --gtest_random_seed=N replays it.
#ifndef BATON_TESTS_SUPPORT_SEED_H_
#define BATON_TESTS_SUPPORT_SEED_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"

namespace baton::test_support {

// --gtest_random_seed=N if given, else `default_seed` (so runs are
// reproducible by default).
inline uint32_t TestSeed(uint32_t default_seed) {
  const int32_t flag = GTEST_FLAG_GET(random_seed);
  return flag != 0 ? static_cast<uint32_t>(flag) : default_seed;
}

inline std::string SeedTrace(uint32_t seed) {
  return absl::StrFormat("seed=%u (reproduce with --gtest_random_seed=%u)",
                         seed, seed);
}

}  // namespace baton::test_support

#endif  // BATON_TESTS_SUPPORT_SEED_H_
