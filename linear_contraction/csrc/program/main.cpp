// residual_layer LAYER OUT: load a layer and a batch y saved from Python (torch.save of a dict with the keys weights,
// biases, activation, y, atol, rtol, maxiter), solve x + g(x) = y with the native inverse, map x forward again, print
// the reconstruction error max|F(x) − y| and the steps, and save x to OUT (torch.load reads it in Python).
#include <torch/serialize.h>
#include <fstream>
#include <iostream>
#include <iterator>
#include "residual.h"

static std::vector<at::Tensor> tensor_list(const c10::IValue& v) {
  std::vector<at::Tensor> out;
  for (const auto& t : v.toListRef()) out.push_back(t.toTensor());
  return out;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: residual_layer LAYER OUT  (LAYER: torch.save of {weights, biases, activation, y, atol, rtol, maxiter})\n";
    return 2;
  }
  try {
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) { std::cerr << "residual_layer: cannot read " << argv[1] << "\n"; return 2; }
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto dict = torch::pickle_load(bytes).toGenericDict();
    linear_contraction::Residual g(tensor_list(dict.at("weights")), tensor_list(dict.at("biases")),
                                   dict.at("activation").toStringRef());
    at::Tensor y = dict.at("y").toTensor();
    auto [x, residual, steps] = linear_contraction::residual_inverse(
        y, g, dict.at("atol").toDouble(), dict.at("rtol").toDouble(), dict.at("maxiter").toInt(), /*report=*/true, /*raise=*/false);
    at::Tensor y2 = linear_contraction::residual_forward(x, g);
    std::cout << "batch " << y.size(0) << ", features " << y.size(1) << ", " << y.scalar_type() << "\n";
    std::cout << "steps " << steps.min().item<int64_t>() << ".." << steps.max().item<int64_t>() << "\n";
    std::cout << "max residual " << residual.max().item<double>() << "\n";
    std::cout << "reconstruction error " << (y2 - y).abs().max().item<double>() << "\n";
    auto out = torch::pickle_save(x);
    std::ofstream(argv[2], std::ios::binary).write(out.data(), static_cast<std::streamsize>(out.size()));
  } catch (const std::exception& e) {
    std::cerr << "residual_layer: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
