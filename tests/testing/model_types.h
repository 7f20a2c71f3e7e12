#ifndef MPC_TESTS_TESTING_MODEL_TYPES_H_
#define MPC_TESTS_TESTING_MODEL_TYPES_H_

// The built-in model list as GoogleTest types: a typed test over BuiltinModels covers every model,
// including one added later, with no edit to the test.

#include <string>

#include "gtest/gtest.h"
#include "solver/models/model_list.h"

namespace mpc::testing {

template <class List>
struct GtestTypesOf;
template <class... Models>
struct GtestTypesOf<ModelList<Models...>> {
  using type = ::testing::Types<Models...>;
};

using BuiltinModelTypes = GtestTypesOf<BuiltinModelList>::type;

// Names typed-test instances after the model ("pendulum", ...).
struct ModelTypeName {
  template <class Model>
  static std::string GetName(int) {
    return Model::kName;
  }
};

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_MODEL_TYPES_H_
