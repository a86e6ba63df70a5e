"""ripdep: copy-deploy many isolated apps on one Linux VM without containers."""

import os

__version__ = "0.1.0"


def _build() -> str:
    """This build's identity: VERSION+HASH of its files, which install.sh writes beside the package
    (docs/install.md); plain __version__ when running from a checkout."""
    try:
        with open(os.path.join(os.path.dirname(__file__), "BUILD")) as f:
            return f.read().strip() or __version__
    except OSError:
        return __version__


BUILD = _build()
