#include "tests/testing/reference_case.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "solver/models/model_list.h"

#ifndef MPCD_DEFAULT_REFERENCE_DIR
#define MPCD_DEFAULT_REFERENCE_DIR ""
#endif

namespace mpc::testing {
namespace {

using nlohmann::json;

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  // nlohmann::json reports malformed input by exception; keep that inside this file.
  json parsed = json::parse(buffer.str(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::DataLossError(absl::StrCat("malformed JSON in ", path));
  return parsed;
}

void FlattenInto(const json& value, std::vector<double>* out) {
  if (value.is_array()) {
    for (const json& v : value) FlattenInto(v, out);
  } else {
    out->push_back(value.get<double>());
  }
}

absl::Status CheckSize(const std::vector<double>& v, std::size_t expected,
                       const std::string& what) {
  if (v.size() != expected) {
    return absl::DataLossError(
        absl::StrCat(what, ": expected ", expected, " numbers, found ", v.size()));
  }
  return absl::OkStatus();
}

// A bound as the README allows it: null, a number (the same for every t, b, j) or (T, n_batch, m).
absl::StatusOr<std::vector<double>> BoundOf(const json& bound, int b, int horizon, int m,
                                            const std::string& what) {
  if (bound.is_null()) return std::vector<double>();
  if (bound.is_number()) return std::vector<double>(m, bound.get<double>());
  std::vector<double> v = ElementOfTimeFirst(bound, b);
  if (v.size() != static_cast<std::size_t>(horizon) * m) {
    return absl::DataLossError(absl::StrCat(what, ": expected (T, n_batch, m)"));
  }
  return v;
}

absl::StatusOr<ReferenceTrajectory> TrajectoryOf(const json& node, int b, int horizon, int n, int m,
                                                 const std::string& what) {
  ReferenceTrajectory traj;
  traj.x = ElementOfTimeFirst(node.at("x"), b);
  traj.u = ElementOfTimeFirst(node.at("u"), b);
  traj.cost = node.at("cost").at(b).get<double>();
  absl::Status status = CheckSize(traj.x, static_cast<std::size_t>(horizon) * n, what + ".x");
  if (status.ok()) status = CheckSize(traj.u, static_cast<std::size_t>(horizon) * m, what + ".u");
  if (!status.ok()) return status;
  return traj;
}

absl::StatusOr<ReferenceCase> ParseCase(json raw) {
  ReferenceCase rc;
  rc.case_id = raw.at("case_id").get<std::string>();
  rc.kind = raw.at("kind").get<std::string>();
  rc.constrained = raw.at("constrained").get<bool>();
  const json& dims = raw.at("dims");
  rc.n_state = dims.at("n_state").get<int>();
  rc.n_ctrl = dims.at("n_ctrl").get<int>();
  rc.horizon = dims.at("T").get<int>();
  rc.n_batch = dims.at("n_batch").get<int>();
  const int n = rc.n_state;
  const int m = rc.n_ctrl;
  const int horizon = rc.horizon;
  const int n_tau = n + m;

  const json& settings = raw.at("mpc_settings");
  rc.options.max_iterations = settings.at("lqr_iter").get<int>();
  rc.options.tolerance = settings.at("eps").get<double>();
  rc.options.linesearch_decay = settings.at("linesearch_decay").get<double>();
  rc.options.max_linesearch_iterations = settings.at("max_linesearch_iter").get<int>();
  rc.options.best_cost_eps = settings.at("best_cost_eps").get<double>();
  rc.options.not_improved_limit = settings.at("not_improved_lim").get<int>();
  if (!settings.at("u_init").is_null()) {
    return absl::UnimplementedError("mpc_settings.u_init other than null is not supported");
  }

  ProblemShape shape;
  shape.state_dim = n;
  shape.control_dim = m;
  shape.horizon = horizon;
  if (rc.kind == "lqr") {
    shape.dynamics = DynamicsId::Linear();
  } else if (rc.kind == "pendulum") {
    shape.dynamics = ModelId<PendulumModel>();
  } else if (rc.kind == "cartpole") {
    shape.dynamics = ModelId<CartpoleModel>();
  } else {
    return absl::DataLossError(absl::StrCat("unknown kind ", rc.kind));
  }

  const json& inputs = raw.at("inputs");
  const json& outputs = raw.at("outputs");
  const json& crosscheck = raw.at("crosscheck");
  const std::size_t tn = static_cast<std::size_t>(horizon);
  for (int b = 0; b < rc.n_batch; ++b) {
    Problem p;
    p.shape = shape;
    p.options = rc.options;
    p.x_init = ElementOfBatchFirst(inputs.at("x_init"), b);
    p.cost_quadratic = ElementOfTimeFirst(inputs.at("C"), b);
    p.cost_linear = ElementOfTimeFirst(inputs.at("c"), b);
    absl::Status status = CheckSize(p.x_init, n, "inputs.x_init");
    if (status.ok()) status = CheckSize(p.cost_quadratic, tn * n_tau * n_tau, "inputs.C");
    if (status.ok()) status = CheckSize(p.cost_linear, tn * n_tau, "inputs.c");
    if (!status.ok()) return status;
    if (rc.is_lqr()) {
      p.transition = ElementOfTimeFirst(inputs.at("F"), b);
      p.offset = ElementOfTimeFirst(inputs.at("f"), b);
      status = CheckSize(p.transition, (tn - 1) * n * n_tau, "inputs.F");
      if (status.ok()) status = CheckSize(p.offset, (tn - 1) * n, "inputs.f");
      if (!status.ok()) return status;
    } else {
      const json& env = raw.at("env");
      p.params = Flatten(env.at("params"));
      p.dt = env.at("dt").get<double>();
    }
    absl::StatusOr<std::vector<double>> lower =
        BoundOf(inputs.at("u_lower"), b, horizon, m, "inputs.u_lower");
    if (!lower.ok()) return lower.status();
    absl::StatusOr<std::vector<double>> upper =
        BoundOf(inputs.at("u_upper"), b, horizon, m, "inputs.u_upper");
    if (!upper.ok()) return upper.status();
    p.u_lower = *std::move(lower);
    p.u_upper = *std::move(upper);
    if (p.u_lower.empty() != p.u_upper.empty()) {
      return absl::DataLossError("only one of u_lower, u_upper is given");
    }
    if (!inputs.at("u_init").is_null()) {
      return absl::UnimplementedError("inputs.u_init other than null is not supported");
    }
    rc.problems.push_back(std::move(p));

    absl::StatusOr<ReferenceTrajectory> out = TrajectoryOf(outputs, b, horizon, n, m, "outputs");
    if (!out.ok()) return out.status();
    rc.outputs.push_back(*std::move(out));
    std::vector<int> active;
    for (double a : ElementOfTimeFirst(outputs.at("active"), b)) {
      active.push_back(static_cast<int>(a));
    }
    rc.active.push_back(std::move(active));

    const json& exact_node = rc.is_lqr() ? crosscheck : crosscheck.at("polished");
    absl::StatusOr<ReferenceTrajectory> exact =
        TrajectoryOf(exact_node, b, horizon, n, m, rc.is_lqr() ? "crosscheck" : "polished");
    if (!exact.ok()) return exact.status();
    rc.exact.push_back(*std::move(exact));

    if (rc.is_lqr()) {
      const json& msc = crosscheck.at("min_strict_complementarity").at(b);
      rc.min_strict_complementarity.push_back(
          msc.is_null() ? std::nullopt : std::optional<double>(msc.get<double>()));
    } else {
      rc.projected_grad_inf_norm.push_back(
          crosscheck.at("projected_grad_inf_norm").at(b).get<double>());
      rc.polished_projected_grad_inf_norm.push_back(
          crosscheck.at("polished").at("projected_grad_inf_norm").at(b).get<double>());
    }
  }

  if (rc.is_lqr()) {
    const json& d = crosscheck.at("mpc_pytorch_minus_exact");
    rc.outputs_minus_exact = {d.at("max_abs_x").get<double>(), d.at("max_abs_u").get<double>(),
                              d.at("max_abs_cost").get<double>()};
  } else {
    const json& d = crosscheck.at("polished");
    rc.outputs_minus_exact = {d.at("max_abs_x_mpc_minus_polished").get<double>(),
                              d.at("max_abs_u_mpc_minus_polished").get<double>(),
                              d.at("max_abs_cost_mpc_minus_polished").get<double>()};
  }
  const json& tol = raw.at("suggested_tolerance");
  rc.suggested = {tol.at("x_u_abs").get<double>(), tol.at("cost_abs").get<double>(),
                  tol.at("grad_rel").get<double>()};
  rc.raw = std::move(raw);
  return rc;
}

}  // namespace

std::string ReferenceDir() {
  const char* env = std::getenv("MPCD_REFERENCE_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return MPCD_DEFAULT_REFERENCE_DIR;
}

absl::StatusOr<std::vector<std::string>> ListReferenceCases(const std::string& dir) {
  absl::StatusOr<json> index = ReadJson(dir + "/index.json");
  if (!index.ok()) return index.status();
  std::vector<std::string> ids;
  try {
    for (const json& c : index->at("cases")) ids.push_back(c.at("case_id").get<std::string>());
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(dir, "/index.json: ", e.what()));
  }
  return ids;
}

std::vector<std::string> ReferenceCaseIds() {
  absl::StatusOr<std::vector<std::string>> ids = ListReferenceCases(ReferenceDir());
  // One id no index lists: its test then fails loading it, with the reason the index could not be
  // read (a suite with no instance would pass silently).
  if (!ids.ok() || ids->empty()) return {kMissingReferenceCase};
  return *ids;
}

std::string ReferenceCaseTestName(const std::string& case_id) {
  std::string name;
  bool upper = true;
  for (char c : case_id) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0) {
      upper = true;
      continue;
    }
    name += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return name;
}

absl::StatusOr<ReferenceCase> LoadReferenceCase(const std::string& dir,
                                                const std::string& case_id) {
  absl::StatusOr<json> index = ReadJson(dir + "/index.json");
  if (!index.ok()) return index.status();
  try {
    for (const json& c : index->at("cases")) {
      if (c.at("case_id").get<std::string>() == case_id) {
        return LoadReferenceCaseFile(dir + "/" + c.at("file").get<std::string>());
      }
    }
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(dir, "/index.json: ", e.what()));
  }
  return absl::NotFoundError(absl::StrCat("case ", case_id, " is not in ", dir, "/index.json"));
}

absl::StatusOr<ReferenceCase> LoadReferenceCaseFile(const std::string& path) {
  absl::StatusOr<json> raw = ReadJson(path);
  if (!raw.ok()) return raw.status();
  // Missing fields and wrong types surface as json::exception from at()/get().
  try {
    absl::StatusOr<ReferenceCase> rc = ParseCase(*std::move(raw));
    if (!rc.ok()) {
      return absl::Status(rc.status().code(), absl::StrCat(path, ": ", rc.status().message()));
    }
    return rc;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": ", e.what()));
  }
}

std::vector<double> ElementOfTimeFirst(const json& array, int b) {
  std::vector<double> out;
  for (const json& slice : array) FlattenInto(slice.at(b), &out);
  return out;
}

std::vector<double> ElementOfBatchFirst(const json& array, int b) {
  std::vector<double> out;
  FlattenInto(array.at(b), &out);
  return out;
}

std::vector<double> Flatten(const json& array) {
  std::vector<double> out;
  FlattenInto(array, &out);
  return out;
}

}  // namespace mpc::testing
