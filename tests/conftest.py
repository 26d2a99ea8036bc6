"""Shared pytest configuration: make the repository importable and the helpers available."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
