// kdnas_gpu_tests: the CUDA backend against the CPU reference. Runs only where a usable CUDA
// device is found; anywhere else it prints why and exits with 77, which CTest (SKIP_RETURN_CODE)
// reports as skipped rather than passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "kernels/cuda/cuda_context.h"

int main(int argc, char** argv) {
  std::string why;
  if (!kdnas::cuda_device_usable(&why)) {
    std::printf("SKIPPED: no usable CUDA device (%s)\n", why.c_str());
    return 77;
  }
  kdnas::cuda_init();
  std::printf("kdnas_gpu_tests on %s\n", kdnas::cuda_device_description().c_str());
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
