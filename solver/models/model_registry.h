#ifndef MPC_SOLVER_MODELS_MODEL_REGISTRY_H_
#define MPC_SOLVER_MODELS_MODEL_REGISTRY_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "solver/models/integrators.h"
#include "solver/problem.h"

namespace mpc {

// What a client needs to know to build a problem for a built-in model (ListModels).
struct ModelInfo {
  std::string name;
  DynamicsId id;
  int state_dim;
  int control_dim;
  std::vector<std::string> param_names;
  std::vector<double> default_params;
  double default_dt;  // seconds
  // Continuous-time (an ODE discretised by an integrator) or discrete-time (its own update rule).
  bool continuous;
  Integrator default_integrator;  // kDefault for discrete-time models
  // Accepted `integrator` values, the default first; none for a discrete-time model.
  std::vector<std::string> integrators;
  std::vector<std::string> state_names;
  std::vector<std::string> control_names;
};

// Every built-in model, in the order of the model list (models/model_list.h): FindModel(id) is
// BuiltinModels()[id.model].
const std::vector<ModelInfo>& BuiltinModels();

// The model called `name`, or nullptr.
const ModelInfo* FindModel(absl::string_view name);

// The model `id` names, or nullptr (linear dynamics).
const ModelInfo* FindModel(DynamicsId id);

// Every integrator a continuous-time dynamics may name, the given default first.
std::vector<std::string> IntegratorNames(Integrator first);

// The integrator called `name` ("euler", "midpoint", "rk4"), or kDefault for any other name.
Integrator IntegratorFromName(absl::string_view name);

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_MODEL_REGISTRY_H_
