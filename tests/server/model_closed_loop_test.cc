// Each built-in robot model steered to a goal pose in closed loop through a real mpcd on loopback:
// every step sends the current state in a Solve request (the model by name, a quadratic cost
// around the goal, control bounds, the previous plan shifted as warm start), applies the first
// control to the model's own Step (the simulator is the model header itself) and measures the
// distance to the goal at the end.

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "solver/models/double_integrator.h"
#include "solver/models/kinematic_bicycle.h"
#include "solver/models/unicycle.h"
#include "tests/testing/service_fixtures.h"
#include "tests/testing/status_matchers.h"

namespace mpc::testing {
namespace {

struct GoalTask {
  std::vector<double> x_init;
  std::vector<double> goal;
  std::vector<double> state_weights;
  double control_weight = 0.1;
  double control_bound = 1.0;
  int horizon = 20;
  int steps = 60;
  double position_tolerance = 0.1;  // on the first two states (x, y)
};

// Runs the task in closed loop against `server`; returns the final state.
template <class Model>
std::vector<double> RunClosedLoop(const MpcServer& server, const GoalTask& task) {
  constexpr int n = Model::kStateDim, m = Model::kControlDim, nt = n + m;
  const int T = task.horizon;
  std::unique_ptr<MpcClient> client = Connect(server);
  std::vector<double> C(nt * nt, 0.0), c(nt, 0.0);
  for (int i = 0; i < n; ++i) {
    C[i * nt + i] = task.state_weights[i];
    c[i] = -task.state_weights[i] * task.goal[i];  // 0.5 (x - g)' W (x - g) up to a constant
  }
  for (int j = n; j < nt; ++j) C[j * nt + j] = task.control_weight;
  std::vector<double> x = task.x_init;
  std::vector<double> warm(static_cast<std::size_t>(T) * m, 0.0);
  for (int step = 0; step < task.steps; ++step) {
    mpcd::v1::SolveRequest request;
    request.set_horizon(T);
    request.mutable_options()->set_max_iterations(50);
    request.mutable_options()->set_tolerance(1e-6);
    mpcd::v1::Problem& p = *request.add_problems();
    *p.mutable_x_init() = MakeTensor({n}, x);
    *p.mutable_cost()->mutable_quadratic() = MakeTensor({nt, nt}, C);
    *p.mutable_cost()->mutable_linear() = MakeTensor({nt}, c);
    p.mutable_dynamics()->mutable_model()->set_name(Model::kName);
    *p.mutable_u_lower() = MakeTensor({m}, std::vector<double>(m, -task.control_bound));
    *p.mutable_u_upper() = MakeTensor({m}, std::vector<double>(m, task.control_bound));
    *p.mutable_u_init() = MakeTensor({static_cast<std::uint32_t>(T), m}, warm);
    absl::StatusOr<mpcd::v1::SolveResponse> response = client->Solve(request);
    EXPECT_THAT(response, IsOk());
    if (!response.ok()) return x;
    const mpcd::v1::Solution& solution = response->solutions(0);
    EXPECT_NE(solution.status(), mpcd::v1::NOT_FINITE);
    const std::vector<double> u(solution.u().data().begin(), solution.u().data().end());
    std::vector<double> next(n);
    Model::Step(x.data(), u.data(), Model::kDefaultParams, Model::kDefaultDt, next.data());
    x = next;
    std::copy(u.begin() + m, u.end(), warm.begin());
    std::copy(u.end() - m, u.end(), warm.end() - m);
  }
  return x;
}

template <class Model>
void ExpectReachesGoal(const GoalTask& task) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  const std::vector<double> x = RunClosedLoop<Model>(*server, task);
  const double distance = std::hypot(x[0] - task.goal[0], x[1] - task.goal[1]);
  const double start = std::hypot(task.x_init[0] - task.goal[0], task.x_init[1] - task.goal[1]);
  EXPECT_LT(distance, task.position_tolerance) << Model::kName << " ended at (" << x[0] << ", "
                                               << x[1] << "), " << start << " away at start";
}

TEST(ModelClosedLoopTest, DoubleIntegratorReachesTheGoalAndStops) {
  GoalTask task;
  task.x_init = {2.0, -1.0, 0.0, 0.0};
  task.goal = {0.0, 0.0, 0.0, 0.0};
  task.state_weights = {10.0, 10.0, 1.0, 1.0};
  task.control_bound = 2.0;
  task.steps = 50;
  ExpectReachesGoal<DoubleIntegratorModel>(task);
}

TEST(ModelClosedLoopTest, UnicycleDrivesToAGoalPose) {
  GoalTask task;
  task.x_init = {0.0, 0.0, 0.0};
  task.goal = {2.0, 1.0, 0.0};
  task.state_weights = {10.0, 10.0, 1.0};
  task.control_bound = 1.5;
  task.horizon = 30;
  task.steps = 80;
  ExpectReachesGoal<UnicycleModel>(task);
}

TEST(ModelClosedLoopTest, KinematicBicycleParksAtAGoalPose) {
  GoalTask task;
  task.x_init = {0.0, 0.0, 0.0, 0.0};
  task.goal = {4.0, 1.0, 0.0, 0.0};
  task.state_weights = {10.0, 10.0, 1.0, 1.0};
  task.control_bound = 0.5;  // |acceleration| <= 0.5 m/s^2, |steering| <= 0.5 rad
  task.horizon = 30;
  task.steps = 120;
  task.position_tolerance = 0.2;
  ExpectReachesGoal<KinematicBicycleModel>(task);
}

}  // namespace
}  // namespace mpc::testing
