#ifndef MPC_TESTS_TESTING_PROTO_TENSORS_H_
#define MPC_TESTS_TESTING_PROTO_TENSORS_H_

// Building and reading mpcd.v1.Tensor messages in the request-layer tests (repeated-double form).

#include <cstdint>
#include <vector>

#include "mpcd/v1/mpcd.pb.h"

namespace mpc::testing {

inline mpcd::v1::Tensor MakeTensor(const std::vector<std::uint32_t>& shape,
                                   const std::vector<double>& data) {
  mpcd::v1::Tensor tensor;
  tensor.mutable_shape()->Assign(shape.begin(), shape.end());
  tensor.mutable_data()->Assign(data.begin(), data.end());
  return tensor;
}

inline std::vector<double> DataOf(const mpcd::v1::Tensor& tensor) {
  return {tensor.data().begin(), tensor.data().end()};
}

inline std::vector<std::uint32_t> ShapeOf(const mpcd::v1::Tensor& tensor) {
  return {tensor.shape().begin(), tensor.shape().end()};
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_PROTO_TENSORS_H_
