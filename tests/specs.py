"""Where the vendors' published OpenAPI files are: `VENDOR_SPECS_DIR`, by default the
`shared/vendor-specs` folder beside the repository. They are reference data kept outside
the project; tests that need them skip with a clear reason when the folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

VENDOR_SPECS = Path(
    os.environ.get(
        "VENDOR_SPECS_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "vendor-specs"
    )
)
MISSING = f"vendor specs not found at {VENDOR_SPECS} (set VENDOR_SPECS_DIR to check them)"


def specs_dir() -> Path:
    """The vendor specs folder, or skip the calling test when it is not there."""
    if not VENDOR_SPECS.is_dir():
        pytest.skip(MISSING)
    return VENDOR_SPECS
