"""Independent truths the tests compare the library with: float64 SVDs, explicit convolution operators, finite differences."""
import torch
from torch import Tensor

from linear_contraction.conv import conv_matrix, geometry_of


def sigma_max(W: Tensor) -> float:
    "σ_max of a matrix by a float64 SVD."
    return torch.linalg.svdvals(W.detach().double())[0].item()


def conv_operator_norm(m: torch.nn.Module, size: tuple) -> float:
    "The ℓ² operator norm of the convolution `m` uses now, on inputs of `size`: the explicit matrix's float64 SVD."
    return torch.linalg.matrix_norm(conv_matrix(m.weight.detach().double(), geometry_of(m), size), 2).item()


def central_differences(loss, W: Tensor, h: float = 1e-6) -> Tensor:
    "∂loss/∂W by central differences, one entry at a time (`loss()` reads W; W is restored)."
    fd = torch.zeros_like(W)
    with torch.no_grad():
        flat, out = W.view(-1), fd.view(-1)
        for i in range(flat.numel()):
            w0 = flat[i].item()
            flat[i] = w0 + h; fp = loss().item()
            flat[i] = w0 - h; fm = loss().item()
            flat[i] = w0
            out[i] = (fp - fm) / (2 * h)
    return fd
