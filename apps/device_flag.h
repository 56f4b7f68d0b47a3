// --device: where a command runs its ops ("cpu", "cuda", "cuda:N"; docs/cuda.md).
//
// Every command that takes the flag calls resolve_device() first in its callback, before it
// reads a model or writes a file, so that asking for a GPU that is not there costs nothing and
// leaves nothing behind: the error is one line ("kdnas: error: --device cuda: ..."), exit 1.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "kernels/context.h"
#include "kernels/cuda/cuda_context.h"
#include "tensor/check.h"
#include "tensor/device.h"

namespace kdnas::cli {

// Adds --device TEXT (default "cpu") to cmd, stored in `device`.
inline CLI::Option* add_device_flag(CLI::App* cmd, std::string& device) {
  return cmd->add_option("--device", device,
                         "where the ops run: cpu (default), cuda or cuda:N (docs/cuda.md)");
}

// The device `text` names, checked to be usable: a bad name, a build without the CUDA backend,
// or no usable GPU is a kdnas::Error of one line that starts with "--device <text>".
inline Device resolve_device(const std::string& text) {
  Device d;
  try {
    d = parse_device(text);
  } catch (const Error&) {
    KDNAS_CHECK(false, "--device ", text, ": not a device (expected cpu, cuda or cuda:N)");
  }
  if (d.is_cpu()) return d;
  KDNAS_CHECK(cuda_compiled(), "--device ", text,
              ": this build has no CUDA backend (docs/cuda.md)");
  std::string why;
  const bool usable = cuda_device_usable(&why);
  KDNAS_CHECK(usable, "--device ", text, ": no usable CUDA device (", why, ")");
  return d;
}

}  // namespace kdnas::cli
