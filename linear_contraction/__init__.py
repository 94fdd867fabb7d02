"""Lipschitz-bounded linear and convolutional layers whose bound holds: certified spectral and convolution norms, contractions, invertible ResNets and DEQs for PyTorch"""

__version__ = "0.0.1"

# The public API: what a user of the layers needs. Everything else is reachable by its module path
# (`linear_contraction.spectral`, `.certify`, `.conv`, `.conv_norm`, `.constraint`, `.matrix_constraint`, `.conv_constraint`, `.orthogonal`,
# `.contraction`, `.orthogonal_conv`, `.cayley_conv`, `.solvers`, `.implicit`, `.linsolve`, `.iresnet`, `.deq`, `.autograd`, `.checks`) and documented there. Benchmarks live in `linear_contraction.bench`, which this package never imports.
from .checks import ConvergenceWarning, ConvergenceError
from .spectral import spectral_norm, singular_triplet
from .certify import certified_spectral_bound
from .conv_norm import conv_spectral_norm, certified_conv_bound
from .contraction import LinearContraction, contraction, remove_contraction, refresh_contractions
from .orthogonal_conv import OrthogonalConv2d
from .cayley_conv import CayleyConv2d
from .activations import MaxMin
from .solvers import SolverResult, fixed_point, anderson, broyden
from .iresnet import iResNetBlock, iResNet, ActNorm, contractive_mlp, contractive_cnn
from .implicit import equilibrium, ImplicitGradient, PhantomGradient, UnrolledGradient
from .deq import DEQFixedPoint

__all__ = ['ConvergenceWarning', 'ConvergenceError', 'spectral_norm', 'singular_triplet', 'certified_spectral_bound',
           'conv_spectral_norm', 'certified_conv_bound',
           'LinearContraction', 'contraction', 'remove_contraction', 'refresh_contractions', 'OrthogonalConv2d', 'CayleyConv2d', 'MaxMin', 'SolverResult', 'fixed_point',
           'anderson', 'broyden', 'iResNetBlock', 'iResNet', 'ActNorm', 'contractive_mlp', 'contractive_cnn', 'equilibrium',
           'ImplicitGradient', 'PhantomGradient', 'UnrolledGradient', 'DEQFixedPoint']
