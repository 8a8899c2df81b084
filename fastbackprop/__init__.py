"""fastbackprop: the course's backpropagation equations, verified and compiled.

Examples are columns, as in the course: ``X`` is ``(n_x, m)``, ``Y`` is
``(n_y, m)``, ``W{l}`` is ``(n_l, n_{l-1})`` and ``b{l}`` is ``(n_l, 1)``.

``fastbackprop.reference`` holds the equations in plain NumPy.
"""

__version__ = "0.1.0"
