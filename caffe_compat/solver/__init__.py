"""Training as Caffe does it: the six solvers, lr policies, snapshots.

``caffe_compat.get_solver(path)`` / ``caffe_compat.Solver(path)`` give the
solver the file's ``type`` names; ``SGDSolver(path)`` etc. force a type, as in
pycaffe. See :mod:`.solver` for the training loop, :mod:`.updates` for the
arithmetic, :mod:`.lr_policy` and :mod:`.snapshot`.
"""

from .lr_policy import LR_POLICIES, learning_rate
from .params import SOLVER_TYPES, load_solver_param
from .solver import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    Solver,
    SolverAction,
    get_solver,
    solver_class,
)

__all__ = [
    "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver", "AdaDeltaSolver",
    "AdamSolver", "get_solver", "solver_class", "SolverAction", "LR_POLICIES", "SOLVER_TYPES",
    "learning_rate", "load_solver_param",
]
