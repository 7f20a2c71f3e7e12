#ifndef MPC_TESTS_TESTING_MODEL_TYPES_H_
#define MPC_TESTS_TESTING_MODEL_TYPES_H_

// The built-in model list as GoogleTest types: a typed test over BuiltinModels covers every model,
// including one added later, with no edit to the test.

#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

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

// The continuous-time models of the list (those with integrators).
template <class List>
struct ContinuousGtestTypesOf;
template <class... Models>
struct ContinuousGtestTypesOf<ModelList<Models...>> {
  template <class Tuple>
  struct FromTuple;
  template <class... Kept>
  struct FromTuple<std::tuple<Kept...>> {
    using type = ::testing::Types<Kept...>;
  };
  using type = typename FromTuple<decltype(std::tuple_cat(
      std::declval<
          std::conditional_t<Models::kContinuous, std::tuple<Models>, std::tuple<>>>()...))>::type;
};

using ContinuousModelTypes = ContinuousGtestTypesOf<BuiltinModelList>::type;

// Names typed-test instances after the model ("pendulum", ...).
struct ModelTypeName {
  template <class Model>
  static std::string GetName(int) {
    return Model::kName;
  }
};

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_MODEL_TYPES_H_
