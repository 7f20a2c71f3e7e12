#include "common/cli.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/build_info.h"

namespace mpc::cli {
namespace {

bool DefinedIn(const absl::CommandLineFlag& flag, const std::string& main_file) {
  return absl::EndsWith(flag.Filename(), main_file);
}

// The flags defined in the program's main file, sorted by name.
std::vector<absl::CommandLineFlag*> ProgramFlags(const ProgramHelp& help) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (DefinedIn(*flag, help.main_file)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  return flags;
}

// `text` as lines of at most kWidth characters, each starting with `indent`.
std::string Wrap(absl::string_view text, absl::string_view indent) {
  constexpr std::size_t kWidth = 100;
  std::string out;
  std::string line(indent);
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (line.size() > indent.size() && line.size() + 1 + word.size() > kWidth) {
      absl::StrAppend(&out, line, "\n");
      line = std::string(indent);
    }
    if (line.size() > indent.size()) line += ' ';
    absl::StrAppend(&line, word);
  }
  absl::StrAppend(&out, line, "\n");
  return out;
}

// "  --port=50051\n      gRPC port ...\n" (strings quoted, so an empty default shows as "").
std::string DescribeFlag(const absl::CommandLineFlag& flag) {
  std::string value = flag.DefaultValue();
  if (flag.IsOfType<std::string>()) value = absl::StrCat("\"", value, "\"");
  return absl::StrCat("  --", flag.Name(), "=", value, "\n", Wrap(flag.Help(), "      "));
}

const Command* FindCommand(const ProgramHelp& help, absl::string_view name) {
  for (const Command& command : help.commands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

bool IsHelpArgument(absl::string_view arg) {
  return arg == "--help" || arg == "-help" || arg == "-h" || arg == "--helpshort" ||
         arg == "-helpshort" || arg == "--help=true";
}

}  // namespace

std::string VersionString(const std::string& program) {
  return absl::StrCat(program, " ", kBuildVersion, " (revision ", kBuildRevision, ")");
}

void InstallUsageConfig(const ProgramHelp& help) {
  absl::FlagsUsageConfig config;
  const std::string main_file = help.main_file;
  auto in_main_file = [main_file](absl::string_view filename) {
    return absl::EndsWith(filename, main_file);
  };
  config.contains_help_flags = in_main_file;
  config.contains_helpshort_flags = in_main_file;
  config.contains_helppackage_flags = in_main_file;
  const std::string program = help.program;
  config.version_string = [program] { return VersionString(program) + "\n"; };
  absl::SetFlagsUsageConfig(config);
}

std::string HelpText(const ProgramHelp& help, const std::string& command_name) {
  const Command* command = command_name.empty() ? nullptr : FindCommand(help, command_name);
  std::string text = absl::StrCat(command != nullptr ? command->usage : help.usage, "\n\n");
  const std::vector<absl::CommandLineFlag*> all = ProgramFlags(help);
  if (command == nullptr) {
    absl::StrAppend(&text, "Flags (shown with their defaults):\n");
    for (const absl::CommandLineFlag* flag : all) absl::StrAppend(&text, DescribeFlag(*flag));
  } else {
    absl::StrAppend(&text, "Flags of `", help.program, " ", command->name,
                    "` (shown with their defaults):\n");
    for (const std::string& name : command->flags) {
      for (const absl::CommandLineFlag* flag : all) {
        if (flag->Name() == name) absl::StrAppend(&text, DescribeFlag(*flag));
      }
    }
  }
  absl::StrAppend(
      &text, "\n",
      Wrap(absl::StrCat("Every flag can also be set by an environment variable: ",
                        EnvironmentVariable(help, "flag_name"), " for --flag_name (e.g. ",
                        EnvironmentVariable(help, "port"),
                        "=50052); the command line and --flagfile win over the environment."),
           ""),
      "Also: --flagfile=FILE (one --flag=value per line), --version, --helpfull (Abseil's own "
      "flags too).\n");
  return text;
}

std::string EnvironmentVariable(const ProgramHelp& help, const std::string& flag) {
  return absl::StrCat(help.env_prefix, absl::AsciiStrToUpper(flag));
}

bool ApplyEnvironment(const ProgramHelp& help, std::string* error) {
  for (absl::CommandLineFlag* flag : ProgramFlags(help)) {
    const std::string variable = EnvironmentVariable(help, std::string(flag->Name()));
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr || value[0] == '\0') continue;
    std::string parse_error;
    if (!flag->ParseFrom(value, &parse_error)) {
      *error = absl::StrCat(variable, "=\"", value, "\": ", parse_error);
      return false;
    }
  }
  return true;
}

std::optional<int> HandleHelp(int argc, char** argv, const ProgramHelp& help) {
  bool wanted = false;
  std::string command;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (IsHelpArgument(arg)) {
      wanted = true;
    } else if (command.empty() && !absl::StartsWith(arg, "-") &&
               FindCommand(help, arg) != nullptr) {
      command = std::string(arg);
    }
  }
  if (!wanted) return std::nullopt;
  std::cout << HelpText(help, command);
  return 0;
}

}  // namespace mpc::cli
