#ifndef MPC_TESTS_TESTING_REFERENCE_CASE_FIXTURE_H_
#define MPC_TESTS_TESTING_REFERENCE_CASE_FIXTURE_H_

// A test parameterised by reference case id (ReferenceCaseIds()) with that case loaded as rc_.

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reference_case.h"
#include "tests/testing/status_matchers.h"

namespace mpc::testing {

class ReferenceCaseFixture : public ::testing::TestWithParam<std::string> {
 protected:
  // Fails the test (fatally) when the case does not load.
  void SetUp() override {
    absl::StatusOr<ReferenceCase> rc = LoadReferenceCase(ReferenceDir(), GetParam());
    ASSERT_THAT(rc, IsOk());
    rc_ = *std::move(rc);
  }

  ReferenceCase rc_;
};

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_REFERENCE_CASE_FIXTURE_H_
