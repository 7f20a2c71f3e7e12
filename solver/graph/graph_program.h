#ifndef MPC_SOLVER_GRAPH_GRAPH_PROGRAM_H_
#define MPC_SOLVER_GRAPH_GRAPH_PROGRAM_H_

// Dynamics as data (DESIGN §12): x_next = f(x, u; theta) given as a compiled graph, evaluated in
// double on the host, with its own derivatives (never finite differences). A GraphProgram is what
// an ONNX graph compiles to (solver/graph/onnx_import.h): one flat buffer of scalars (x, u, the
// parameters theta, the constants, every intermediate) and a tape of a few primitive instructions
// over it, constants already folded. A GraphEvaluator runs a program: values forward, adjoints
// backward (reverse mode), and the same two sweeps over dual numbers for second derivatives
// (forward over reverse). Host only (std containers); the element records' sweeps are
// solver/graph/element_sweeps.h, which the device runs too (core::GraphTapeDynamics).

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "Eigen/Eigenvalues"
#include "solver/cpu/double4.h"
#include "solver/dual.h"
#include "solver/graph/element_sweeps.h"
#include "solver/models/integrators.h"

namespace mpc {

// One step of the tape. Positions are offsets into the program's buffer.
struct GraphInstruction {
  GraphOp op = GraphOp::kGather;
  int out = 0;              // first output position
  int size = 0;             // output elements
  int input = 0;            // unary: the input's first position
  std::vector<int> a, b;    // binary: operand positions, one per output element
  std::vector<int> start;   // gather: (size + 1) ranges into source
  std::vector<int> source;  // gather: buffer positions
  double alpha = 0.0, beta = 0.0;
  // Matmul: a batch of (rows, inner) x (inner, cols) products.
  int rows = 0, inner = 0, cols = 0;
  int a_row = 0, a_col = 0, b_row = 0, b_col = 0;
  std::vector<int> a_base, b_base, out_base;  // one entry per product
  // Activity (MarkActivity): whether the output, and each operand (binary ops and products; a
  // unary op's input is as its output), depends on x or u. A sweep for derivatives in x and u
  // alone skips what does not. Every flag true (the default) is always correct.
  bool active = true;
  bool a_active = true, b_active = true;
};

// A named parameter of the graph (an ONNX initializer): theta[offset, offset + size) holds it,
// row-major in `shape`.
struct GraphParameter {
  std::string name;
  std::vector<std::int64_t> shape;
  int offset = 0;
  int size = 0;
};

// The SHA-256 of the graph's bytes (its identity on the wire and in the batch key).
using GraphFingerprint = std::array<std::uint64_t, 4>;

// A compiled dynamics graph x_next = f(x, u; theta), or a cost graph l(tau; theta) (is_cost: its
// one input tau = [x; u] sits where x would, state_dim = n+m, control_dim = 0, a scalar output).
// Immutable once built; shared by every problem and worker that uses the graph.
struct GraphProgram {
  int state_dim = 0;    // n: elements of x and of the output (a cost: n+m)
  int control_dim = 0;  // m: elements of u (a cost: 0)
  int output_dim = 0;   // n (dynamics), k (a stage constraint g(x, u) <= 0) or 1 (a cost)
  std::string output_name;
  bool is_cost = false;
  std::vector<GraphParameter> parameters;  // in the graph's initializer order
  int param_dim = 0;                       // p: elements of theta (all parameters)
  std::vector<double> default_params;      // (p): the initializers' values
  GraphFingerprint fingerprint{};
  std::string sha256;  // the fingerprint as 64 lowercase hex digits

  // Buffer layout: x at 0, u at state_dim, theta at state_dim + control_dim, the rest after.
  std::vector<double> initial_buffer;  // constants in place, zeros elsewhere
  int output = 0;                      // position of x_next (state_dim elements)
  std::vector<GraphInstruction> tape;
  // The tape, one record per element (FlattenToElements), when it has no matrix products; empty
  // otherwise (or when not flattened): the sweeps then run `tape` itself.
  std::vector<ElementInstruction> elements;

  int x_position() const { return 0; }
  int u_position() const { return state_dim; }
  int theta_position() const { return state_dim + control_dim; }

  // The element records and the buffer's layout as plain pointers (solver/graph/element_sweeps.h);
  // valid while the program lives.
  GraphTapeView ElementView() const {
    GraphTapeView view;
    view.elements = elements.data();
    view.element_count = static_cast<int>(elements.size());
    view.initial_buffer = initial_buffer.data();
    view.buffer_size = static_cast<int>(initial_buffer.size());
    view.state_dim = state_dim;
    view.control_dim = control_dim;
    view.param_dim = param_dim;
    view.output = output;
    view.x_position = x_position();
    view.u_position = u_position();
    view.theta_position = theta_position();
    return view;
  }
};

// Runs `tape` over `buffer` in place (values only): what constant folding evaluates a node with.
void EvaluateGraphTape(const std::vector<GraphInstruction>& tape, double* buffer);

// What a reverse sweep delivers: the adjoints of x and u only (derivatives in x and u: the
// inactive instructions and operands are skipped, the parameters' adjoints left as they were), or
// of every position (derivatives in the parameters too).
enum class GraphAdjoints : std::uint8_t { kOfInputs, kOfAll };

// Sets the activity flags of `program`'s instructions: a position is active when its value depends
// on x or u (through the tape, from the buffer's x and u), and an instruction or operand is active
// when any of its positions is. Run once the tape is final.
void MarkActivity(GraphProgram* program);

// Sets `program`'s elements from its final tape and activity flags (after MarkActivity) when the
// tape has no matrix products.
void FlattenToElements(GraphProgram* program);

// Runs a GraphProgram: holds the buffers one evaluation needs (sized once, reused), so one
// evaluator per thread. Shapes: x (n), u (m), theta (p), matrices row-major.
class GraphEvaluator {
 public:
  explicit GraphEvaluator(std::shared_ptr<const GraphProgram> program);

  const GraphProgram& program() const { return *program_; }

  // Promises that theta's contents stay as they are until UnbindParameters (or the next
  // BindParameters): evaluations at this theta then leave the parameters in the evaluator's
  // buffers instead of copying them in each time (an MLP's thousands of weights cost a fifth of
  // its solve to copy per step). Evaluations at any other theta stay correct (they copy).
  void BindParameters(const double* theta);
  void UnbindParameters();

  // x_next (n) = f(x, u; theta).
  void Step(const double* x, const double* u, const double* theta, double* x_next);

  // x_next and the Jacobians A = df/dx (n, n) and B = df/du (n, m): one forward sweep with the
  // n+m tangents beside the values on a tape without matrix products, else one forward sweep and
  // one reverse sweep per four rows.
  void StepWithJacobians(const double* x, const double* u, const double* theta, double* x_next,
                         double* A, double* B);

  // g (p) = (df/dtheta)' lambda: the vector-Jacobian product with a costate lambda (n), one
  // reverse sweep whatever p is.
  void ParamVjp(const double* x, const double* u, const double* theta, const double* lambda,
                double* g);

  // g (p) = d/de [(df/dtheta)' lambda](x + e dx, u + e du) at e = 0: the mixed second derivative
  // of lambda' f applied to the direction (dx (n), du (m)). Forward over reverse, one sweep.
  void MixedDirectional(const double* x, const double* u, const double* theta, const double* lambda,
                        const double* dx, const double* du, double* g);

  // grad (p) -= (df/dtheta)' mu + [lambda given] MixedDirectional(lambda, dx, du): one step's
  // share of dL/dtheta in the implicit backward pass (solver/core/implicit_backward.h).
  void SubtractParamGradient(const double* x, const double* u, const double* theta,
                             const double* mu, const double* lambda, const double* dx,
                             const double* du, double* grad);

  // H (n+m, n+m) = d2 (lambda' f) / d tau2 with tau = [x; u]: n+m forward-over-reverse sweeps.
  void LambdaHessian(const double* x, const double* u, const double* theta, const double* lambda,
                     double* H);

  // Cost graphs (program().is_cost), at tau = [x (n); u (m)]: the cost l(tau; theta); its
  // gradient g (n+m) and exact Hessian H (n+m, n+m, symmetrised) by n+m forward-over-reverse
  // sweeps; and one step's share of dL/dtheta in the implicit backward pass, grad (p) -=
  // d/de [dl/dtheta](tau + e dtau) at e = 0 (one forward-over-reverse sweep).
  double Cost(const double* x, const double* u, int n, const double* theta);
  void CostDerivatives(const double* x, const double* u, int n, const double* theta, double* g,
                       double* H);
  // C (n+m, n+m) = H, projected onto the positive semi-definite matrices (negative eigenvalues
  // set to 0) when `project` (the solve's model; the backward pass wants the exact H), and
  // c = g - C tau: the quadratic model 0.5 tau' C tau + c' tau whose gradient at tau is g.
  // Returns whether H needed the projection.
  bool QuadratiseCost(const double* x, const double* u, int n, const double* theta, double* C,
                      double* c, bool project = true);
  void SubtractCostParamGradient(const double* x, const double* u, int n, const double* theta,
                                 const double* dx, const double* du, double* grad);

  // Stage constraint graphs (g(x, u; theta) <= 0, output_dim k rows; control_dim 0 for a graph of
  // x alone, whose rows are 0 on u): row `row` of g, one forward sweep for all rows (repeated
  // only when x, u or theta changed since the last call: the solver asks row by row); the
  // linearisation G (k, width = the problem's n+m) = dg/d[x; u] and h (k) = G [x; u] - g at
  // (x, u), one reverse sweep per four rows; grad (p) += the chain rule of the rows' gradients
  // grad_G (k, width), grad_h (k) through G(theta) and h(theta) at (x, u) (k + 1 sweeps); and
  // H (width, width) = sum_r nu_r d2g_r/d[x; u]2, symmetrised (n+m forward-over-reverse sweeps).
  double ConstraintRow(const double* x, const double* u, const double* theta, int row);
  void LinearizeConstraints(const double* x, const double* u, const double* theta, int width,
                            double* G, double* h);
  void AddConstraintParamGradient(const double* x, const double* u, const double* theta, int width,
                                  const double* grad_G, const double* grad_h, double* grad);
  void ConstraintCurvature(const double* x, const double* u, const double* theta, const double* nu,
                           int width, double* H);

  // The solver's discrete step F for `dt`, and the same derivatives of F as above: F = f when
  // dt.integrator is kDefault (a discrete-time graph); otherwise the graph is dx/dt = f and F its
  // integrator's step over dt.seconds, differentiated by chaining the graph's own sweeps through
  // the stages (the reverse pass over the stages in plain numbers for first derivatives, in dual
  // numbers for second), so the derivatives are those of the integrator, not of f.
  void Step(const double* x, const double* u, const double* theta, TimeStep dt, double* x_next);
  void StepWithJacobians(const double* x, const double* u, const double* theta, TimeStep dt,
                         double* x_next, double* A, double* B);
  void SubtractParamGradient(const double* x, const double* u, const double* theta, TimeStep dt,
                             const double* mu, const double* lambda, const double* dx,
                             const double* du, double* grad);
  void LambdaHessian(const double* x, const double* u, const double* theta, TimeStep dt,
                     const double* lambda, double* H);

 private:
  using Dual1 = Dual<double, 1>;

  // The adjoints of one integrated step's reverse pass, in G: a stage buffer's, the stage
  // outputs', the seed (n) and what it gives x, u and theta.
  template <typename G>
  struct StageAdjoints {
    std::vector<G> adjoints;
    std::vector<G> k_adjoint[ButcherTableau::kMaxStages];  // (n) each
    std::vector<G> seed, x_bar, u_bar, theta_bar;
  };
  // One integrated step's stages in scalar S (double, or Dual1 along one direction): each
  // stage's whole buffer, kept for the reverse pass, and that pass's adjoints in S.
  template <typename S>
  struct Stages : StageAdjoints<S> {
    std::vector<S> values[ButcherTableau::kMaxStages];
    std::vector<S> x, u, x_next;
    ButcherTableau tableau{};
    double h = 0.0;
    const double* loaded_theta = nullptr;  // the parameters `values` hold (BindParameters)
  };
  template <typename S>
  Stages<S>& StagesOf();
  void SizeStages();

  // stages.x, stages.u -> stages.x_next (n): F in scalar S, every stage's buffer kept.
  template <typename S>
  void IntegrateForward(const double* theta, TimeStep dt);
  // After IntegrateForward<S>, into `out`: (x_bar, u_bar) = (dF/d(x, u))' seed, and theta_bar =
  // (dF/dtheta)' seed when `adjoints` is kOfAll; one reverse sweep of the graph per stage. `out`
  // is the stages' own (G = S) or four seeds' at once (G = Double4, each lane as alone).
  template <typename S, typename G>
  void IntegrateReverse(StageAdjoints<G>* out, GraphAdjoints adjoints);
  // Sets the Dual1 stages' x and u to (x + e dx, u + e du), then runs forward and reverse with
  // `lambda` as the seed: the tangents are then d/de of (dF/d(x, u, theta))' lambda.
  void IntegrateDirectional(const double* x, const double* u, const double* theta, TimeStep dt,
                            const double* lambda, const double* dx, const double* du,
                            GraphAdjoints adjoints);

  // Output rows per reverse sweep of the first derivatives (the lanes of a Double4).
  static constexpr int kRowsPerSweep = 4;

  // After a forward sweep into values_: the adjoints (row_adjoints_) of output rows [first, first
  // + rows), rows <= kRowsPerSweep, in one reverse sweep of kOfInputs; each lane's sums are those
  // of its row's sweep alone, in the same order.
  void ReverseRows(int first, int rows);

  // values_ = [x; u; theta] (theta left as it is when values_ holds the bound parameters).
  void Load(const double* x, const double* u, const double* theta);
  // theta into dual_values_ (likewise).
  void LoadDualTheta(const double* theta);
  // tau_ = [x (n); u (tau_dim - n)] for a cost graph.
  const double* Tau(const double* x, const double* u, int n);

  std::shared_ptr<const GraphProgram> program_;
  // BindParameters' pointer (null: none), and the parameters values_ and dual_values_ hold.
  const double* bound_theta_ = nullptr;
  const double* loaded_theta_ = nullptr;
  const double* dual_loaded_theta_ = nullptr;
  std::vector<double> values_, adjoints_, param_scratch_, tau_, dtau_;
  // StepWithJacobians' tangents (n+m per position) when it sweeps forward; empty otherwise.
  std::vector<double> lanes_;
  // ReverseRows' adjoints: lane r of a position is its adjoint in the sweep of row first + r.
  std::vector<Double4> row_adjoints_;
  // A constraint graph's: one row's seed, and ConstraintRow's cache (the inputs and g there).
  std::vector<double> row_seed_, rows_at_, rows_, curvature_;
  bool rows_valid_ = false;
  std::vector<Dual1> dual_values_, dual_adjoints_;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen_;  // a cost's Hessian (sized once)
  Eigen::MatrixXd hessian_;
  Stages<double> stages_;
  Stages<Dual1> dual_stages_;
  StageAdjoints<Double4> row_stages_;  // the integrated step's four-row sweeps
};

}  // namespace mpc

#endif  // MPC_SOLVER_GRAPH_GRAPH_PROGRAM_H_
