"""asyncssh for the lab, without the CryptographyDeprecationWarning lines that its DSA support
raises under newer cryptography (the lab imports nothing of the app, so it keeps its own)."""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)")

import asyncssh  # noqa: E402

__all__ = ["asyncssh"]
