#ifndef MPC_TESTS_TESTING_PROTO_TENSORS_H_
#define MPC_TESTS_TESTING_PROTO_TENSORS_H_

// mpcd.v1 Tensors in tests: built from a shape and row-major values (repeated doubles, as a JSON
// tool writes them), and read back.

#include <cstdint>
#include <vector>

#include "mpcd/v1/mpcd.pb.h"

namespace mpc::testing {

inline mpcd::v1::Tensor MakeTensor(std::vector<std::uint32_t> shape,
                                   const std::vector<double>& data) {
  mpcd::v1::Tensor tensor;
  tensor.mutable_shape()->Assign(shape.begin(), shape.end());
  tensor.mutable_data()->Assign(data.begin(), data.end());
  return tensor;
}

// The values of a Tensor written as repeated doubles (what the conversion's responses hold before
// EncodeResponseTensors).
inline std::vector<double> TensorValues(const mpcd::v1::Tensor& tensor) {
  return std::vector<double>(tensor.data().begin(), tensor.data().end());
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_PROTO_TENSORS_H_
