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

// Stacks per-problem repeated tensors (equal shapes) into (B, ...), as repeated doubles.
inline mpcd::v1::Tensor Stack(const std::vector<mpcd::v1::Tensor>& parts) {
  mpcd::v1::Tensor tensor;
  tensor.add_shape(static_cast<std::uint32_t>(parts.size()));
  for (std::uint32_t dim : parts[0].shape()) tensor.add_shape(dim);
  for (const mpcd::v1::Tensor& part : parts) {
    for (double v : part.data()) tensor.add_data(v);
  }
  return tensor;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_PROTO_TENSORS_H_
