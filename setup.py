"""Declares the compiled kernels (RGB histogram, image resize); everything else is in pyproject.toml."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "labelmend.ext._histogram",
        ["ext/_histogram.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
    Extension("labelmend.ext._resize", ["ext/_resize.pyx"], extra_compile_args=["-O3"]),
]

# bounds checks off: the Python wrapper (ext/__init__.py) validates shapes and dtypes before calling the kernel
directives = {"boundscheck": False, "wraparound": False}
setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives=directives))
