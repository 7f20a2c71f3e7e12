#include "solver/models/model_registry.h"

#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"

namespace mpc {

const std::vector<ModelInfo>& BuiltinModels() {
  static const auto* const kModels = new std::vector<ModelInfo>{
      {PendulumModel::kName, DynamicsKind::kPendulum, PendulumModel::kStateDim,
       PendulumModel::kControlDim, {"g", "m", "l"}, {10.0, 1.0, 1.0}, PendulumModel::kDefaultDt,
       {"euler"}, {"cos_th", "sin_th", "dth"}, {"torque"}},
      {CartpoleModel::kName, DynamicsKind::kCartpole, CartpoleModel::kStateDim,
       CartpoleModel::kControlDim, {"gravity", "masscart", "masspole", "length"},
       {9.8, 1.0, 0.1, 0.5}, CartpoleModel::kDefaultDt, {"euler"},
       {"x", "dx", "cos_th", "sin_th", "dth"}, {"force"}},
  };
  return *kModels;
}

const ModelInfo* FindModel(absl::string_view name) {
  for (const ModelInfo& info : BuiltinModels()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

const ModelInfo* FindModel(DynamicsKind kind) {
  for (const ModelInfo& info : BuiltinModels()) {
    if (info.kind == kind) return &info;
  }
  return nullptr;
}

}  // namespace mpc
