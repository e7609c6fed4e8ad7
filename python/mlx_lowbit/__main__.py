# Copyright © 2026 mlx-lowbit contributors.
from .cli import main

main()
