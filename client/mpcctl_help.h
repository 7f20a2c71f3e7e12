#ifndef MPC_CLIENT_MPCCTL_HELP_H_
#define MPC_CLIENT_MPCCTL_HELP_H_

// mpcctl's help: each subcommand's usage and the flags it reads (`mpcctl solve --help`).

#include <string>

#include "common/cli.h"

namespace mpc {

// `usage` is the whole program's usage text (`mpcctl --help`).
cli::ProgramHelp MpcctlHelp(const std::string& usage);

}  // namespace mpc

#endif  // MPC_CLIENT_MPCCTL_HELP_H_
