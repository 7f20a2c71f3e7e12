#ifndef MPC_COMMON_CLI_H_
#define MPC_COMMON_CLI_H_

// Command-line help and version for mpcd and mpcctl over Abseil's flags.
//
// Abseil's own --help lists only the flags defined in a file named like the binary (mpcd's are in
// server/main.cc) and exits 1. HandleHelp answers --help (also -h, -help, --helpshort) itself: the
// usage text, then every flag defined in the program's main file with its default and help text,
// exit 0. A program with subcommands (mpcctl) lists, for `PROGRAM COMMAND --help`, that command's
// usage and the flags it reads. InstallUsageConfig points Abseil's --helpshort/--helpfull
// filters at the same file and makes --version print VersionString().

#include <optional>
#include <string>
#include <vector>

namespace mpc::cli {

struct Command {
  std::string name;                // "solve"
  std::string usage;               // its usage lines
  std::vector<std::string> flags;  // the flags it reads, in the order to list them
};

struct ProgramHelp {
  std::string program;    // "mpcd"
  std::string usage;      // the whole program's usage text
  std::string main_file;  // path suffix of the file defining the program's flags: "server/main.cc"
  // Environment variables: flag --port is also read from env_prefix + "PORT" ("MPCD_FLAG_PORT").
  std::string env_prefix;
  std::vector<Command> commands;  // subcommands, if any
};

// "mpcd 0.1.0 (revision 0123456789ab)": the CMake project version and the git revision the build
// was configured from ("unknown" outside git).
std::string VersionString(const std::string& program);

// Abseil's usage configuration: --helpshort and --helpfull's file filter and --version's text.
// Call before absl::ParseCommandLine.
void InstallUsageConfig(const ProgramHelp& help);

// When argv asks for help (--help, -help, -h or --helpshort before any "--"), prints it to stdout
// and returns the exit code (0); otherwise returns nullopt. Call before absl::ParseCommandLine.
std::optional<int> HandleHelp(int argc, char** argv, const ProgramHelp& help);

// The environment variable of `flag`: env_prefix + the flag's name in upper case.
std::string EnvironmentVariable(const ProgramHelp& help, const std::string& flag);

// Sets every flag of the program's main file whose environment variable is set (and not empty)
// from it. Call before absl::ParseCommandLine, so that the command line and --flagfile win over
// the environment. Returns false with `error` naming the variable when a value does not parse.
bool ApplyEnvironment(const ProgramHelp& help, std::string* error);

// The help text HandleHelp prints for `command` ("" = the whole program).
std::string HelpText(const ProgramHelp& help, const std::string& command);

}  // namespace mpc::cli

#endif  // MPC_COMMON_CLI_H_
