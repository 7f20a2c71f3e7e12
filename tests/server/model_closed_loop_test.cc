// Each built-in robot model steered to a goal pose in closed loop through a real mpcd on loopback:
// every step sends the current state in a Solve request (the model by name, a quadratic cost
// around the goal, control bounds, the previous plan shifted as warm start), applies the first
// control to the model's own step (the simulator is the model header itself: ModelStep, which
// integrates a continuous-time model as the server does) and measures the distance to the goal at
// the end.

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "solver/models/double_integrator.h"
#include "solver/models/integrators.h"
#include "solver/models/kinematic_bicycle.h"
#include "solver/models/quadrotor.h"
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
  // (m): the control the cost centres on and the warm start begins with (empty: zeros), e.g. a
  // quadrotor's hover thrust; bounds per control (empty: +-control_bound).
  std::vector<double> control_goal;
  std::vector<double> control_lower, control_upper;
  int horizon = 20;
  int steps = 60;
  int position_dims = 2;            // the first states that are the position (x, y or x, y, z)
  double position_tolerance = 0.1;  // on the position
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
  const std::vector<double> u_goal =
      task.control_goal.empty() ? std::vector<double>(m, 0.0) : task.control_goal;
  for (int j = n; j < nt; ++j) {
    C[j * nt + j] = task.control_weight;
    c[j] = -task.control_weight * u_goal[j - n];
  }
  const std::vector<double> lower =
      task.control_lower.empty() ? std::vector<double>(m, -task.control_bound) : task.control_lower;
  const std::vector<double> upper =
      task.control_upper.empty() ? std::vector<double>(m, task.control_bound) : task.control_upper;
  std::vector<double> x = task.x_init;
  std::vector<double> warm;
  for (int t = 0; t < T; ++t) warm.insert(warm.end(), u_goal.begin(), u_goal.end());
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
    *p.mutable_u_lower() = MakeTensor({m}, lower);
    *p.mutable_u_upper() = MakeTensor({m}, upper);
    *p.mutable_u_init() = MakeTensor({static_cast<std::uint32_t>(T), m}, warm);
    absl::StatusOr<mpcd::v1::SolveResponse> response = client->Solve(request);
    EXPECT_THAT(response, IsOk());
    if (!response.ok()) return x;
    const mpcd::v1::Solution& solution = response->solutions(0);
    EXPECT_NE(solution.status(), mpcd::v1::NOT_FINITE);
    const std::vector<double> u(solution.u().data().begin(), solution.u().data().end());
    std::vector<double> next(n);
    ModelStep<Model>(x.data(), u.data(), Model::kDefaultParams, Model::kDefaultDt, next.data());
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
  double distance = 0.0, start = 0.0;
  for (int i = 0; i < task.position_dims; ++i) {
    distance += (x[i] - task.goal[i]) * (x[i] - task.goal[i]);
    start += (task.x_init[i] - task.goal[i]) * (task.x_init[i] - task.goal[i]);
  }
  EXPECT_LT(std::sqrt(distance), task.position_tolerance)
      << Model::kName << " ended at (" << x[0] << ", " << x[1] << ", " << x[2] << "), "
      << std::sqrt(start) << " away at start";
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

// Continuous-time, integrated by RK4 on the server and in the simulator (the model's default): from
// hover at the origin to hover at a goal 1.2 m away, thrust within [0, 2 m g].
TEST(ModelClosedLoopTest, QuadrotorFliesFromHoverToAGoalAndHovers) {
  using Model = QuadrotorModel;
  const double hover = Model::kDefaultParams[0] * Model::kGravity;
  GoalTask task;
  task.x_init.assign(Model::kStateDim, 0.0);
  task.goal.assign(Model::kStateDim, 0.0);
  task.goal[0] = 1.0;
  task.goal[1] = -0.5;
  task.goal[2] = 0.5;
  task.state_weights = {10, 10, 10, 1, 1, 1, 1, 1, 1, 0.1, 0.1, 0.1};
  task.control_weight = 0.1;
  task.control_goal = {hover, 0.0, 0.0, 0.0};
  task.control_lower = {0.0, -1.0, -1.0, -0.1};
  task.control_upper = {2 * hover, 1.0, 1.0, 0.1};
  task.horizon = 30;
  task.steps = 80;  // 4 s at dt = 0.05
  task.position_dims = 3;
  ExpectReachesGoal<Model>(task);
}

}  // namespace
}  // namespace mpc::testing
