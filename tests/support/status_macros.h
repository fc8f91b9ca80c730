// Assertions on absl::Status and absl::StatusOr<T> for every test.
//
//   ASSERT_OK(expr);  EXPECT_OK(expr);  // expr: a Status or a StatusOr
//   ASSERT_OK_AND_ASSIGN(value, expr);  // declares `value` = *expr
//
// The failure message names the expression and shows the status. Like
// every ASSERT_*, ASSERT_OK returns from the enclosing function: not for
// coroutines (use EXPECT_OK and co_return there).
#ifndef BATON_TESTS_SUPPORT_STATUS_MACROS_H_
#define BATON_TESTS_SUPPORT_STATUS_MACROS_H_

#include <gtest/gtest.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace baton::test_support {

inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace baton::test_support

#define BATON_TEST_CHECK_OK_(check, expr)                                   \
  do {                                                                      \
    const auto& baton_status_ = (expr);                                     \
    check(::baton::test_support::StatusOf(baton_status_).ok())              \
        << #expr << ": " << ::baton::test_support::StatusOf(baton_status_); \
  } while (0)

#define ASSERT_OK(expr) BATON_TEST_CHECK_OK_(ASSERT_TRUE, expr)
#define EXPECT_OK(expr) BATON_TEST_CHECK_OK_(EXPECT_TRUE, expr)

// `auto lhs = *expr` once `expr` (a StatusOr) is known to be OK.
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                             \
  auto lhs##_or = (expr);                                           \
  ASSERT_TRUE(lhs##_or.ok()) << #expr << ": " << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

#endif  // BATON_TESTS_SUPPORT_STATUS_MACROS_H_
