# Copyright © 2026 mlx-lowbit contributors.

from mlx import extension
from setuptools import setup

if __name__ == "__main__":
    setup(
        packages=["mlx_lowbit", "mlx_lowbit.bench", "mlx_lowbit.lm", "mlx_lowbit.quant"],
        package_dir={"": "python"},
        ext_modules=[extension.CMakeExtension("mlx_lowbit._ext", sourcedir=".")],
        cmdclass={"build_ext": extension.CMakeBuild},
        package_data={"mlx_lowbit": ["*.metallib", "data/*.txt", "data/*.json", "py.typed"]},
        zip_safe=False,
    )
