#include "solver/models/model_registry.h"

#include <iterator>
#include <utility>

#include "solver/models/model_list.h"

namespace mpc {

const std::vector<ModelInfo>& BuiltinModels() {
  static const auto* const kModels = [] {
    auto* models = new std::vector<ModelInfo>;
    ForEachBuiltinModel([&]<class Model>() {
      ModelInfo info;
      info.name = Model::kName;
      info.id = ModelId<Model>();
      info.state_dim = Model::kStateDim;
      info.control_dim = Model::kControlDim;
      info.param_names.assign(std::begin(Model::kParamNames), std::end(Model::kParamNames));
      info.default_params.assign(std::begin(Model::kDefaultParams),
                                 std::end(Model::kDefaultParams));
      info.default_dt = Model::kDefaultDt;
      info.continuous = Model::kContinuous;
      if constexpr (Model::kContinuous) {
        info.default_integrator = Model::kDefaultIntegrator;
        info.integrators = IntegratorNames(Model::kDefaultIntegrator);
      } else {
        info.default_integrator = Integrator::kDefault;
      }
      info.state_names.assign(std::begin(Model::kStateNames), std::end(Model::kStateNames));
      info.control_names.assign(std::begin(Model::kControlNames), std::end(Model::kControlNames));
      models->push_back(std::move(info));
    });
    return models;
  }();
  return *kModels;
}

const ModelInfo* FindModel(absl::string_view name) {
  for (const ModelInfo& info : BuiltinModels()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

const ModelInfo* FindModel(DynamicsId id) {
  const std::vector<ModelInfo>& models = BuiltinModels();
  if (id.model < 0 || id.model >= static_cast<int>(models.size())) return nullptr;  // linear, graph
  return &models[id.model];
}

std::vector<std::string> IntegratorNames(Integrator first) {
  std::vector<std::string> names = {IntegratorName(first)};
  for (Integrator other : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    if (other != first) names.push_back(IntegratorName(other));
  }
  return names;
}

Integrator IntegratorFromName(absl::string_view name) {
  for (Integrator integrator : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    if (name == IntegratorName(integrator)) return integrator;
  }
  return Integrator::kDefault;
}

}  // namespace mpc
