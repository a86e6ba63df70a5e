"""ripdep: copy-deploy many isolated apps on one Linux VM without containers."""

__version__ = "0.1.0"
