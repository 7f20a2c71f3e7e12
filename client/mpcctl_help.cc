#include "client/mpcctl_help.h"

#include <string>
#include <vector>

namespace mpc {
namespace {

// The flags every --target command reads: the channel, TLS and token.
std::vector<std::string> WithTargetFlags(std::vector<std::string> flags) {
  for (const char* name :
       {"target", "timeout", "tls", "tls_ca", "tls_cert", "tls_key", "tls_server_name",
        "auth_token_file", "round_robin", "retry", "service_config"}) {
    flags.push_back(name);
  }
  return flags;
}

}  // namespace

cli::ProgramHelp MpcctlHelp(const std::string& usage) {
  cli::ProgramHelp help;
  help.program = "mpcctl";
  help.usage = usage;
  help.main_file = "client/mpcctl.cc";
  help.env_prefix = "MPCCTL_FLAG_";
  help.commands = {
      {"solve",
       "usage: mpcctl solve --local --request=FILE.json|- [--threads=N]\n"
       "       mpcctl solve --target=HOST:PORT --request=FILE.json|- [--timeout=S]\n"
       "Solves a SolveRequest (protobuf JSON) and prints the SolveResponse as JSON.",
       WithTargetFlags({"request", "local", "threads", "output"})},
      {"backward",
       "usage: mpcctl backward --local --request=FILE.json|- [--threads=N]\n"
       "       mpcctl backward --target=HOST:PORT --request=FILE.json|- [--timeout=S]\n"
       "Gradients for a BackwardRequest (protobuf JSON); prints the BackwardResponse as JSON.",
       WithTargetFlags({"request", "local", "threads", "output"})},
      {"models",
       "usage: mpcctl models --local | --target=HOST:PORT\n"
       "Lists the built-in models (ListModelsResponse as JSON).",
       WithTargetFlags({"local", "output"})},
      {"health",
       "usage: mpcctl health --target=HOST:PORT [--service=NAME]\n"
       "grpc.health.v1 Check; exit 0 only when SERVING.",
       WithTargetFlags({"service"})},
      {"control",
       "usage: mpcctl control --target=HOST:PORT --request=FIRST.json|- [--steps=10] [--json]\n"
       "A receding-horizon session: the first ControlRequest from --request, then each step's\n"
       "measured state from the model itself.",
       WithTargetFlags({"request", "steps", "json"})},
      {"bench",
       "usage: mpcctl bench --target=HOST:PORT [--model=cartpole] [--horizon=25] [--batch=1]\n"
       "                    [--concurrency=N | --rate=R] [--duration=S] [--warmup=S]\n"
       "                    [--iterations=10] [--json] [--verify]\n"
       "Closed-loop (or, with --rate, open-loop) load: throughput, latency, errors.",
       WithTargetFlags({"model", "horizon", "batch", "concurrency", "rate", "max_in_flight",
                        "duration", "warmup", "iterations", "state_dim", "control_dim", "channels",
                        "json", "verify", "verify_tolerance"})},
      {"demo",
       "usage: mpcctl demo [--threads=N]\n"
       "Solves a built-in cartpole swing-up in this process and prints a summary.",
       {"threads"}},
  };
  return help;
}

}  // namespace mpc
