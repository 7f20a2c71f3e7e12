// Prints every number the solver returns for a fixed set of problems, in hexfloat, so that two
// builds can be compared bit for bit (`diff`). The gate of a solver rewrite: run it before and
// after, on every mpc.pytorch reference case and on seeded random problems.
//
//   hexfloat_dump cpu         the CPU backend (solve, backward in every mode, Jacobians)
//   hexfloat_dump interleaved the core run over one interleaved batch on the host (CUDA layout)

#include <cstdio>
#include <string>
#include <vector>

#include "solver/gradients.h"
#include "solver/make_backend.h"
#include "solver/problem.h"
#include "tests/solver/dump_paths.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/reference_case.h"

namespace mpc::testing {
namespace {

void Print(const char* label, const std::vector<double>& values) {
  std::printf("%s", label);
  for (double v : values) std::printf(" %a", v);
  std::printf("\n");
}

void PrintSolution(const Solution& s) {
  std::printf("status %d iterations %d cost %a step %a reg %a\n", static_cast<int>(s.status),
              s.iterations, s.cost, s.step_norm, s.regularization);
  Print("x", s.x);
  Print("u", s.u);
  Print("K", s.feedback);
  Print("k", s.feedforward);
}

void PrintGradient(const ProblemGradient& g) {
  std::printf("gstatus %d reg %a cond %a stat %a dyn %a active %d\n", static_cast<int>(g.status),
              g.regularization, g.condition_estimate, g.stationarity_residual, g.dynamics_residual,
              g.active_controls);
  Print("dx_init", g.x_init);
  Print("dC", g.cost_quadratic);
  Print("dc", g.cost_linear);
  Print("dF", g.transition);
  Print("df", g.offset);
  Print("dp", g.params);
}

std::vector<Problem> Problems() {
  std::vector<Problem> problems;
  auto ids = ListReferenceCases(ReferenceDir());
  if (ids.ok()) {
    for (const std::string& id : *ids) {
      auto reference = LoadReferenceCase(ReferenceDir(), id);
      if (!reference.ok()) continue;
      for (const Problem& p : reference->problems) problems.push_back(p);
    }
  }
  for (int seed = 0; seed < 60; ++seed) {
    RandomLqrOptions options;
    options.state_dim = 2 + seed % 9;
    options.control_dim = 1 + seed % 4;
    options.horizon = 5 + (seed * 7) % 26;
    options.time_varying = seed % 2 == 0;
    options.with_offset = seed % 3 != 0;
    options.bounded = seed % 4 < 2;
    options.warm_start = seed % 5 == 0;
    problems.push_back(RandomLqrProblem(options, 1000 + seed));
  }
  for (int seed = 0; seed < 4; ++seed) {
    RandomLqrOptions options;
    options.state_dim = 8;
    options.control_dim = 4;
    options.horizon = 30;
    options.bounded = seed % 2 == 0;
    problems.push_back(RandomLqrProblem(options, 2000 + seed));
  }
  for (int seed = 0; seed < 3; ++seed) {
    RandomLqrOptions options;
    options.state_dim = 20 + 6 * seed;
    options.control_dim = 5 + seed;
    options.horizon = 12;
    options.bounded = seed != 1;
    problems.push_back(RandomLqrProblem(options, 3000 + seed));
  }
  for (int seed = 0; seed < 20; ++seed) {
    RandomModelOptions options;
    options.horizon = 10 + seed;
    options.bounded = seed % 3 != 0;
    Problem pendulum = RandomPendulumProblem(options, 4000 + seed);
    pendulum.options.max_iterations = 30;
    problems.push_back(pendulum);
    Problem cartpole = RandomCartpoleProblem(options, 5000 + seed);
    cartpole.options.max_iterations = 30;
    problems.push_back(cartpole);
  }
  for (std::size_t i = 0; i < problems.size(); ++i) problems[i].options.compute_gains = i % 2 == 0;
  return problems;
}

// A cotangent that is a function of the solution alone.
BackwardProblem CotangentAt(const Problem& problem, const Solution& solution, GradientMode mode) {
  BackwardProblem bp;
  bp.problem = &problem;
  bp.x = solution.x;
  bp.u = solution.u;
  bp.mode = mode;
  for (std::size_t i = 0; i < solution.x.size(); ++i) bp.dl_dx.push_back(0.5 + 0.1 * (i % 7));
  for (std::size_t i = 0; i < solution.u.size(); ++i) bp.dl_du.push_back(solution.u[i] - 0.3);
  return bp;
}

int Run(const std::string& path) {
  const std::vector<Problem> problems = Problems();
  std::vector<const Problem*> in;
  for (const Problem& p : problems) in.push_back(&p);
  std::vector<Solution> solutions(problems.size());
  std::vector<Solution*> out;
  for (Solution& s : solutions) out.push_back(&s);
  if (!DumpSolve(path, in, out)) return 2;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    std::printf("problem %zu n %d m %d T %d\n", i, problems[i].shape.state_dim,
                problems[i].shape.control_dim, problems[i].shape.horizon);
    PrintSolution(solutions[i]);
  }
  for (GradientMode mode :
       {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
    std::vector<BackwardProblem> backward;
    for (std::size_t i = 0; i < problems.size(); ++i) {
      backward.push_back(CotangentAt(problems[i], solutions[i], mode));
    }
    std::vector<const BackwardProblem*> bin;
    for (const BackwardProblem& bp : backward) bin.push_back(&bp);
    std::vector<ProblemGradient> gradients(problems.size());
    std::vector<ProblemGradient*> gout;
    for (ProblemGradient& g : gradients) gout.push_back(&g);
    std::vector<bool> computed(problems.size(), false);
    if (!DumpBackward(path, bin, gout, &computed)) return 2;
    for (std::size_t i = 0; i < problems.size(); ++i) {
      if (!computed[i]) continue;
      std::printf("gradient %zu mode %s\n", i, GradientModeName(mode));
      PrintGradient(gradients[i]);
    }
  }
  for (std::size_t i = 0; i < problems.size(); ++i) {
    for (GradientMode mode : {GradientMode::kDefault, GradientMode::kExact}) {
      std::vector<double> x_init, params;
      if (!DumpJacobians(path, problems[i], solutions[i], mode, &x_init, &params)) continue;
      std::printf("jacobians %zu mode %s\n", i, GradientModeName(mode));
      Print("dtau_dx_init", x_init);
      Print("dtau_dparams", params);
    }
  }
  return 0;
}

}  // namespace
}  // namespace mpc::testing

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s cpu|interleaved\n", argv[0]);
    return 2;
  }
  return mpc::testing::Run(argv[1]);
}
