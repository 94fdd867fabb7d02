__version__ = "0.0.1"

# The public API: what a user of the layers needs. Everything else is reachable by its module path
# (`linear_contraction.spectral`, `.certify`, `.contraction`, `.solvers`, `.linsolve`, `.iresnet`, `.deq`, `.autograd`,
# `.checks`) and documented there. Benchmarks live in `linear_contraction.bench`, which this package never imports.
from .checks import ConvergenceWarning, ConvergenceError
from .spectral import spectral_norm, singular_triplet
from .certify import certified_spectral_bound
from .contraction import LinearContraction, contraction, remove_contraction, refresh_contractions
from .activations import MaxMin
from .solvers import SolverResult, fixed_point, anderson, broyden
from .iresnet import iResNetBlock, iResNet, contractive_mlp
from .deq import DEQFixedPoint, PhantomGradient

__all__ = ['ConvergenceWarning', 'ConvergenceError', 'spectral_norm', 'singular_triplet', 'certified_spectral_bound',
           'LinearContraction', 'contraction', 'remove_contraction', 'refresh_contractions', 'MaxMin', 'SolverResult', 'fixed_point',
           'anderson', 'broyden', 'iResNetBlock', 'iResNet', 'contractive_mlp', 'DEQFixedPoint', 'PhantomGradient']
