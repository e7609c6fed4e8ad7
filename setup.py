# Copyright © 2026 mlx-lowbit contributors.

import os

from mlx import extension
from setuptools import setup
from setuptools.command.build_py import build_py

# Put at site-packages' top level by the wheel: mlx-lm's commands load our
# models in processes that never import mlx_lowbit (python/_mlx_lowbit_autoload.py).
PTH = "mlx_lowbit-autoload.pth"


class BuildPy(build_py):
    def run(self):
        super().run()
        self.copy_file(os.path.join("python", PTH), os.path.join(self.build_lib, PTH))


if __name__ == "__main__":
    setup(
        packages=["mlx_lowbit", "mlx_lowbit.bench", "mlx_lowbit.lm", "mlx_lowbit.quant"],
        py_modules=["_mlx_lowbit_autoload"],
        package_dir={"": "python"},
        ext_modules=[extension.CMakeExtension("mlx_lowbit._ext", sourcedir=".")],
        cmdclass={"build_ext": extension.CMakeBuild, "build_py": BuildPy},
        package_data={"mlx_lowbit": ["*.metallib", "data/*.txt", "data/*.json", "py.typed"]},
        zip_safe=False,
    )
